// Validation rules that both the parser (on files) and the writer (on its inputs) apply, so the
// writer refuses early what a reader would reject.
#ifndef CKZ_FORMAT_RULES_H_
#define CKZ_FORMAT_RULES_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ckz/archive.h"
#include "ckz/status.h"
#include "ckz/types.h"

namespace ckz {

// Tensor names and metadata keys: 1..kMaxNameBytes bytes of valid UTF-8 without NUL.
Status CheckName(std::string_view name, const std::string& field);

// Source-file paths: a relative path of '/'-separated components, none empty, "." or "..",
// no backslash, NUL or ':'; 1..kMaxNameBytes bytes of valid UTF-8.
Status CheckRelativePath(std::string_view path, const std::string& field);

// The pieces of a source file (spec 8, rules F5 and F6): `splits` (as many as tensors,
// non-decreasing, within the decoded prolog of `prolog_length` bytes; empty stands for "all of
// the prolog first") and `crc32_patches` (each on 4 prolog bytes, in increasing order without
// overlap, naming one of the file's tensors). kFieldOutOfRange naming `field`.
Status CheckSourceFilePieces(uint64_t prolog_length, size_t tensor_count,
                             const std::vector<uint64_t>& splits,
                             const std::vector<Crc32Patch>& patches,
                             const std::string& field);
// Its two halves, for a parser that checks each patch's `reserved` field (F6) in between.
Status CheckSplits(uint64_t prolog_length, size_t tensor_count,
                   const std::vector<uint64_t>& splits, const std::string& field);
// Patch `i`, given patches[0..i].
Status CheckCrc32Patch(uint64_t prolog_length, size_t tensor_count,
                       const std::vector<Crc32Patch>& patches, size_t i, const std::string& field);

// Element count and byte length of a shape; kShapeOverflow past 2^63 bytes or kMaxNdim dims.
Status ShapeBytes(const std::vector<uint64_t>& shape, DType dtype, const std::string& field,
                  uint64_t* num_elements, uint64_t* byte_length);

}  // namespace ckz

#endif  // CKZ_FORMAT_RULES_H_
