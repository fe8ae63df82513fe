// JSON string quoting for tools that print JSON (ckzinfo --json, the benchmark).
#ifndef CKZ_JSON_H_
#define CKZ_JSON_H_

#include <string>
#include <string_view>

namespace ckz {

// Appends `value` as a JSON string literal (quotes included, RFC 8259 escapes).
void AppendJsonString(std::string_view value, std::string* out);
std::string JsonQuote(std::string_view value);

}  // namespace ckz

#endif  // CKZ_JSON_H_
