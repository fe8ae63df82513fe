#include "ckz/status.h"

namespace ckz {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
#define CKZ_NAME(c) \
  case ErrorCode::k##c: return #c;
    CKZ_NAME(Ok)
    CKZ_NAME(InvalidArgument)
    CKZ_NAME(IoError)
    CKZ_NAME(LimitExceeded)
    CKZ_NAME(Unsupported)
    CKZ_NAME(Truncated)
    CKZ_NAME(BadMagic)
    CKZ_NAME(TextModeCorruption)
    CKZ_NAME(UnsupportedVersion)
    CKZ_NAME(UnknownRequiredFeature)
    CKZ_NAME(PreambleChecksum)
    CKZ_NAME(HeaderOutOfBounds)
    CKZ_NAME(HeaderTooLarge)
    CKZ_NAME(HeaderChecksum)
    CKZ_NAME(HeaderMalformed)
    CKZ_NAME(FieldOutOfRange)
    CKZ_NAME(DuplicateName)
    CKZ_NAME(BadName)
    CKZ_NAME(ShapeOverflow)
    CKZ_NAME(RangeOutOfFile)
    CKZ_NAME(RangeOverlap)
    CKZ_NAME(Misaligned)
    CKZ_NAME(UnexplainedBytes)
    CKZ_NAME(NonzeroPadding)
    CKZ_NAME(ChunkLayout)
    CKZ_NAME(BadLink)
    CKZ_NAME(BadOwner)
    CKZ_NAME(ChunkMalformed)
    CKZ_NAME(ChunkDecodeFailed)
    CKZ_NAME(ChunkChecksum)
    CKZ_NAME(ContentIdMismatch)
    CKZ_NAME(CodebookIndex)
    CKZ_NAME(PrologDecodeFailed)
    CKZ_NAME(ReferenceRequired)
    CKZ_NAME(ParentNotFound)
    CKZ_NAME(WrongParent)
    CKZ_NAME(ReferenceMismatch)
    CKZ_NAME(BadChain)
    CKZ_NAME(JsonMalformed)
    CKZ_NAME(SafetensorsMalformed)
    CKZ_NAME(UnsupportedDtype)
    CKZ_NAME(UnsupportedInput)
    CKZ_NAME(ShardIndexMalformed)
    CKZ_NAME(ZipMalformed)
    CKZ_NAME(ZipChecksum)
    CKZ_NAME(PickleMalformed)
    CKZ_NAME(PickleGlobalNotAllowed)
    CKZ_NAME(TorchLegacyFormat)
    CKZ_NAME(TorchStorageMismatch)
#undef CKZ_NAME
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(ErrorCodeName(code_)) + " (" + std::to_string(unsigned(code_)) + "): " +
         message_;
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

}  // namespace ckz
