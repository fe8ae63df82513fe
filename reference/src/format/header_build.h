// Serialises the header FlatBuffer from the same structs the parser produces. Used by the
// writer, and by tests and vector generators that rebuild deliberately broken files.
#ifndef CKZ_FORMAT_HEADER_BUILD_H_
#define CKZ_FORMAT_HEADER_BUILD_H_

#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "ckz/archive.h"

namespace ckz {

// The vectors of 8-byte-aligned elements: tensors[index].shape or .chunks, files[index].splits
// or .crc32_patches.
enum class VectorField { kShape, kChunks, kSplits, kCrc32Patches };
struct MisalignedVector {
  VectorField field = VectorField::kShape;
  size_t index = 0;
};

// Deliberate departures from a valid header, for the tools that make invalid test files
// (conformance vectors, fuzz seeds). Never used when writing real files.
struct HeaderDeviations {
  std::optional<size_t> content_id_bytes;  // write this many content_id bytes (0xEE-padded)
  std::optional<size_t> parent_id_bytes;   // the same for link.parent_content_id
  std::map<std::pair<size_t, size_t>, uint32_t> chunk_reserved;  // (tensor, chunk) -> value
  std::map<size_t, uint8_t> meta_type;     // metadata index -> union type written
  std::map<std::pair<size_t, size_t>, uint32_t> patch_reserved;  // (file, patch) -> value
  // Move one vector of 8-byte-aligned elements to the end of the buffer with its elements 4
  // bytes off their alignment (FlatBuffers 2.0.8's verifier accepts that; rule H3 does not).
  std::optional<MisalignedVector> misaligned;
  bool unknown_fields = false;             // add fields a future minor version might have
  int64_t lstm_params_delta = 0;           // (0.9) LstmModel.params this many bytes longer
};

// Builds the header of `a` (content_id, step, link, tensors, files, metadata, writer; the
// `file`, `preamble` and derived fields are ignored). Values are written as given, valid or
// not: validation is the parser's job.
std::vector<uint8_t> BuildHeader(const Archive& a, const HeaderDeviations* deviations = nullptr);

}  // namespace ckz

#endif  // CKZ_FORMAT_HEADER_BUILD_H_
