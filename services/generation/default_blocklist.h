// The built-in blocklist of the reply filter: services/generation/reply/default_blocklist.yaml,
// compiled in at build time (so a deployed binary needs no data file for it).
#pragma once

namespace helpline::generation {

extern const char kDefaultBlocklistYaml[];

}  // namespace helpline::generation
