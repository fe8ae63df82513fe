// Small helpers shared by the torch readers (torch_zip.cc, torch_pickle.cc, torch_file.cc):
// message formatting for untrusted bytes and the zip entry name rule.
#ifndef CKZ_IO_TORCH_INTERNAL_H_
#define CKZ_IO_TORCH_INTERNAL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "ckz/json.h"
#include "common/utf8.h"

namespace ckz {

// Lower-case hexadecimal, zero-padded to `digits`.
inline std::string Hex(uint64_t value, int digits) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(size_t(digits), '0');
  for (int i = digits - 1; i >= 0; --i, value >>= 4) out[size_t(i)] = kDigits[value & 0xF];
  return out;
}

// A name or string from the file for a message: a JSON string literal when it is valid UTF-8,
// otherwise quoted with every byte outside printable ASCII as \xNN. Long values are cut.
inline std::string QuoteBytes(std::string_view bytes, size_t max = 200) {
  const bool cut = bytes.size() > max;
  if (cut) bytes = bytes.substr(0, max);
  std::string out;
  if (IsValidUtf8(bytes)) {
    out = JsonQuote(bytes);
  } else {
    out = "\"";
    for (unsigned char ch : bytes) {
      if (ch >= 0x20 && ch < 0x7F && ch != '"' && ch != '\\')
        out += char(ch);
      else
        out += "\\x" + Hex(ch, 2);
    }
    out += "\"";
  }
  if (cut) out += "...";
  return out;
}

// Why a zip entry name is not acceptable ("" when it is): empty, a NUL byte, invalid UTF-8, a
// leading '/', or a ".." component.
inline std::string ZipNameProblem(std::string_view name) {
  if (name.empty()) return "the name is empty";
  if (name.find('\0') != std::string_view::npos) return "the name contains a NUL byte";
  if (!IsValidUtf8(name)) return "the name is not valid UTF-8";
  if (name[0] == '/') return "the name starts with '/'";
  size_t start = 0;
  while (true) {
    const size_t slash = name.find('/', start);
    if (name.substr(start, slash == std::string_view::npos ? std::string_view::npos
                                                           : slash - start) == "..")
      return "the name has a '..' component";
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return "";
}

}  // namespace ckz

#endif  // CKZ_IO_TORCH_INTERNAL_H_
