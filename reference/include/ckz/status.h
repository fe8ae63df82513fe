// Error reporting at the library boundary: a stable error-code enum and a Status that pairs a
// code with a message naming the field and file offset involved.
#ifndef CKZ_STATUS_H_
#define CKZ_STATUS_H_

#include <cstdint>
#include <string>
#include <utility>

namespace ckz {

// Stable values: they are part of the format specification (spec/ckz.md, section 11) and
// never change meaning. New codes are appended.
enum class ErrorCode : uint16_t {
  kOk = 0,
  // Usage and environment.
  kInvalidArgument = 1,  // the caller passed something unusable
  kIoError = 2,          // open/read/write/rename failed
  kLimitExceeded = 3,    // a declared size is above this reader's limits
  kUnsupported = 4,      // valid, but not implemented by this build

  // Container (preamble and header).
  kTruncated = 10,               // file shorter than a structure it must hold
  kBadMagic = 11,                // not a CKZ file
  kTextModeCorruption = 12,      // magic damaged the way a text-mode transfer does
  kUnsupportedVersion = 13,      // major version unknown to this reader
  kUnknownRequiredFeature = 14,  // a required feature bit this reader lacks
  kPreambleChecksum = 15,
  kHeaderOutOfBounds = 16,  // header range misaligned, overflowing or past the end
  kHeaderTooLarge = 17,
  kHeaderChecksum = 18,
  kHeaderMalformed = 19,    // FlatBuffers verification or identifier failed
  kFieldOutOfRange = 20,    // enum, index or fixed-size field outside its domain
  kDuplicateName = 21,
  kBadName = 22,            // tensor name, path or key not acceptable
  kShapeOverflow = 23,      // shape x dtype size overflows
  kRangeOutOfFile = 24,     // offset+length overflows or ends past the file
  kRangeOverlap = 25,
  kMisaligned = 26,         // a region does not start on a 64-byte boundary
  kUnexplainedBytes = 27,   // bytes not in any region and not alignment padding
  kNonzeroPadding = 28,
  kChunkLayout = 29,        // chunk lengths do not cover the tensor in whole elements
  kBadLink = 30,            // inconsistent reference-chain link
  kBadOwner = 31,           // optimizer-state owner not a same-shape weight

  // Payload.
  kChunkMalformed = 40,       // stream directory of a chunk is invalid
  kChunkDecodeFailed = 41,    // a stream does not decode to its declared size
  kChunkChecksum = 42,        // decoded bytes do not match the chunk's CRC-32C
  kContentIdMismatch = 43,    // decoded checkpoint does not hash to the declared id
  kCodebookIndex = 44,        // a quantized tensor's index is beyond its codebook
  kPrologDecodeFailed = 45,   // (0.5) a coded prolog does not decode to its length and CRC

  // Reference chains.
  kReferenceRequired = 60,    // decoding needs the parent checkpoint, none was supplied
  kParentNotFound = 61,       // no file with the parent's content id was found
  kWrongParent = 62,          // the supplied parent has another content id
  kReferenceMismatch = 63,    // the parent lacks the tensor, or its dtype/shape differ
  kBadChain = 64,             // depths along the chain are inconsistent

  // Input and output formats.
  kJsonMalformed = 80,
  kSafetensorsMalformed = 81,
  kUnsupportedDtype = 82,
  kUnsupportedInput = 83,     // input kind not recognised
  kShardIndexMalformed = 84,  // model.safetensors.index.json inconsistent with its shards
  kZipMalformed = 85,         // a .pt zip archive is damaged
  kZipChecksum = 86,          // a zip entry fails its CRC-32
  kPickleMalformed = 87,      // invalid or unsupported pickle stream
  kPickleGlobalNotAllowed = 88,  // (not returned since 0.6: unknown globals are carried)
  kTorchLegacyFormat = 89,    // a pre-1.6 (non-zip) torch.save file
  kTorchStorageMismatch = 90, // a storage missing, shorter than its tensors need, or mis-sized
};

// "kChunkChecksum" -> "ChunkChecksum". Stable, used in messages and --json output.
const char* ErrorCodeName(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "ChunkChecksum (42): tensors[3] 'fc1.weight' chunks[0] at offset 4096: ..."
  std::string ToString() const;

  // Prefixes the message with where the error happened ("file.ckz: ...").
  Status WithContext(const std::string& context) const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

// A value or the Status that explains its absence.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: must not be OK
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return value_; }
  const T& value() const& { return value_; }
  T&& value() && { return std::move(value_); }
  T* operator->() { return &value_; }
  const T* operator->() const { return &value_; }
  T& operator*() & { return value_; }

 private:
  Status status_;
  T value_{};
};

}  // namespace ckz

#define CKZ_RETURN_IF_ERROR(expr)          \
  do {                                     \
    ::ckz::Status ckz_status_ = (expr);    \
    if (!ckz_status_.ok()) return ckz_status_; \
  } while (0)

#endif  // CKZ_STATUS_H_
