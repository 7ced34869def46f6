// The committed test images under tests/data/images/ (see its README), for tests of any
// module. Header-only so that unit tests in common/ and services/ need no extra library.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace helpline::testutil {

// The bytes of tests/data/images/<name>, found through $HELPLINE_SOURCE_DIR (ctest sets it).
// Adds a test failure when the file cannot be read.
inline std::string ReadTestImage(const std::string& name) {
  const char* root = std::getenv("HELPLINE_SOURCE_DIR");
  const std::string path = std::string(root ? root : ".") + "/tests/data/images/" + name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace helpline::testutil
