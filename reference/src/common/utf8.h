// Strict UTF-8 validation (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
#ifndef CKZ_COMMON_UTF8_H_
#define CKZ_COMMON_UTF8_H_

#include <string_view>

namespace ckz {

bool IsValidUtf8(std::string_view text);

}  // namespace ckz

#endif  // CKZ_COMMON_UTF8_H_
