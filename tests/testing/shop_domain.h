// The demo domain (domains/shop.yaml) for tests and benchmarks of any module. Header-only,
// so unit tests and benchmarks in common/ and services/ need no extra library.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/domain/domain.h"

namespace helpline::testutil {

// domains/shop.yaml under $HELPLINE_SOURCE_DIR (ctest sets it), else under ".".
inline std::string ShopDomainPath() {
  const char* dir = std::getenv("HELPLINE_SOURCE_DIR");
  return absl::StrCat(dir != nullptr ? dir : ".", "/domains/shop.yaml");
}

// The shop domain, loaded once per process; the status says why it could not be loaded.
inline const absl::StatusOr<std::shared_ptr<const domain::Domain>>& ShopDomain() {
  static const auto* loaded = new absl::StatusOr<std::shared_ptr<const domain::Domain>>(
      []() -> absl::StatusOr<std::shared_ptr<const domain::Domain>> {
        absl::StatusOr<domain::Domain> d = domain::LoadDomainFile(ShopDomainPath());
        if (!d.ok()) return d.status();
        return std::make_shared<const domain::Domain>(*std::move(d));
      }());
  return *loaded;
}

}  // namespace helpline::testutil
