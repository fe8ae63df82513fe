#include "format/rules.h"

#include <algorithm>

#include "ckz/archive.h"
#include "common/utf8.h"

namespace ckz {

Status CheckName(std::string_view name, const std::string& field) {
  if (name.empty()) return Status(ErrorCode::kBadName, field + " is empty");
  if (name.size() > kMaxNameBytes)
    return Status(ErrorCode::kBadName, field + " is " + std::to_string(name.size()) +
                                           " bytes; at most " + std::to_string(kMaxNameBytes));
  if (name.find('\0') != std::string_view::npos)
    return Status(ErrorCode::kBadName, field + " contains a NUL byte");
  if (!IsValidUtf8(name)) return Status(ErrorCode::kBadName, field + " is not valid UTF-8");
  return Status::Ok();
}

Status CheckRelativePath(std::string_view path, const std::string& field) {
  CKZ_RETURN_IF_ERROR(CheckName(path, field));
  if (path.find('\\') != std::string_view::npos || path.find(':') != std::string_view::npos)
    return Status(ErrorCode::kBadName, field + " '" + std::string(path) +
                                           "' contains '\\' or ':'");
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string_view part = path.substr(start, slash == std::string_view::npos ? slash
                                                                                : slash - start);
    if (part.empty() || part == "." || part == "..")
      return Status(ErrorCode::kBadName,
                    field + " '" + std::string(path) +
                        "' is not a relative path of non-empty components without '.' or '..'");
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return Status::Ok();
}

Status CheckSplits(uint64_t prolog_length, size_t tensor_count,
                   const std::vector<uint64_t>& splits, const std::string& field) {
  auto bad = [&](const std::string& what) {
    return Status(ErrorCode::kFieldOutOfRange, field + ": " + what);
  };
  if (!splits.empty() && splits.size() != tensor_count)
    return bad(std::to_string(splits.size()) + " splits for " + std::to_string(tensor_count) +
               " tensors");
  for (size_t i = 0; i < splits.size(); ++i) {
    if (splits[i] > prolog_length)
      return bad("splits[" + std::to_string(i) + "] = " + std::to_string(splits[i]) +
                 " is past the " + std::to_string(prolog_length) + "-byte prolog");
    if (i > 0 && splits[i] < splits[i - 1])
      return bad("splits[" + std::to_string(i) + "] is smaller than the split before it");
  }
  return Status::Ok();
}

Status CheckCrc32Patch(uint64_t prolog_length, size_t tensor_count,
                       const std::vector<Crc32Patch>& patches, size_t i, const std::string& field) {
  const Crc32Patch& p = patches[i];
  const std::string name = field + ": crc32_patches[" + std::to_string(i) + "]";
  auto bad = [&](const std::string& what) { return Status(ErrorCode::kFieldOutOfRange, name + what); };
  if (p.tensor >= tensor_count) return bad(".tensor is not one of the file's tensors");
  if (prolog_length < 4 || p.prolog_offset > prolog_length - 4)
    return bad(".prolog_offset " + std::to_string(p.prolog_offset) +
               " leaves no 4 bytes in the prolog");
  if (i > 0 && p.prolog_offset < patches[i - 1].prolog_offset + 4)
    return bad(" is not after the end of the patch before it");
  return Status::Ok();
}

Status CheckSourceFilePieces(uint64_t prolog_length, size_t tensor_count,
                             const std::vector<uint64_t>& splits,
                             const std::vector<Crc32Patch>& patches, const std::string& field) {
  CKZ_RETURN_IF_ERROR(CheckSplits(prolog_length, tensor_count, splits, field));
  for (size_t i = 0; i < patches.size(); ++i)
    CKZ_RETURN_IF_ERROR(CheckCrc32Patch(prolog_length, tensor_count, patches, i, field));
  return Status::Ok();
}

Status ShapeBytes(const std::vector<uint64_t>& shape, DType dtype, const std::string& field,
                  uint64_t* num_elements, uint64_t* byte_length) {
  if (shape.size() > kMaxNdim)
    return Status(ErrorCode::kShapeOverflow, field + " has " + std::to_string(shape.size()) +
                                                 " dimensions; at most " +
                                                 std::to_string(kMaxNdim));
  constexpr uint64_t kMaxBytes = uint64_t{1} << 63;
  const uint64_t size = DTypeSize(dtype);
  if (size == 0) return Status(ErrorCode::kFieldOutOfRange, field + ": invalid dtype");
  // A zero dimension makes the product 0 whatever the others are, in any order.
  uint64_t n = 1;
  const bool empty = std::find(shape.begin(), shape.end(), 0) != shape.end();
  for (uint64_t d : shape) {
    if (empty) {
      n = 0;
      break;
    }
    if (n > (kMaxBytes - 1) / size / d)
      return Status(ErrorCode::kShapeOverflow,
                    field + ": shape x dtype size is not below 2^63 bytes");
    n *= d;
  }
  *num_elements = n;
  *byte_length = n * size;
  return Status::Ok();
}

}  // namespace ckz
