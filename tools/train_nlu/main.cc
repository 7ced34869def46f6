#include "tools/train_nlu/train_nlu.h"

int main(int argc, char** argv) { return helpline::tools::RunTrainNlu(argc, argv); }
