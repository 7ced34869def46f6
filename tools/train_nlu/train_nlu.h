// `helpline-train-nlu` (later `helpline-train nlu`): trains the utterance models of
// nlu/model on a public data set (--data PATH --format F) or on a domain file's examples
// (--domain FILE) and writes a model folder. Progress on stderr, the final report on stdout.
// Exit codes: 0 done, 1 unreadable data / training or write failure, 2 bad usage.
#pragma once

namespace helpline::tools {

int RunTrainNlu(int argc, char** argv);

}  // namespace helpline::tools
