// Pure chunk decoding (spec 7): stream directory, per-stream entropy decoding, inverse
// transforms, CRC-32C. Reads only inside the chunk's stored range; every length is checked
// before it is used.
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "ckz/decoder.h"
#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/float_model.h"
#include "common/index_model.h"
#include "common/key_split.h"
#include "common/level_model.h"
#include "common/quantize.h"
#include "common/zstd_frame.h"
#include "common/transforms.h"
#include "decompress/decode_scratch.h"
#include "decompress/coder_inputs.h"
#include "format/chunk_layout.h"

namespace ckz {

struct ChunkDecoder::Scratch {
  ZSTD_DCtx* dctx = nullptr;
  std::vector<uint8_t> streams;  // decoded streams, before the inverse transform
  // (0.7) Level kinds: the levels, the parent's step source and the step shifts.
  std::vector<int32_t> levels, parent_levels, aux_levels;
  std::vector<uint8_t> step_source;
  std::vector<int8_t> shifts;
  // The cm model's inputs: parent and aux indices.
  std::vector<uint8_t> parent_indices, aux_indices;
  // (0.8) KeySplit: the symbol streams, back to back, and the bit stream.
  std::vector<uint8_t> key_symbols, key_bits;
  ~Scratch() { ZSTD_freeDCtx(dctx); }
};

ChunkDecoder::ChunkDecoder() : scratch_(new Scratch) {}
ChunkDecoder::~ChunkDecoder() = default;

namespace {

constexpr unsigned long long kMaxZstdWindow = 1ull << 27;  // spec 7.2

// Spec 7.2, packed: index i is bits [i*n, i*n+n) of the stream, least significant bit first;
// the unused high bits of the last byte are zero.
Status UnpackIndices(ByteSpan src, unsigned bits, MutableByteSpan out, const std::string& where) {
  if (src.size != PackedBytes(out.size, bits))
    return Status(ErrorCode::kChunkDecodeFailed,
                  where + ": packed index stream has " + std::to_string(src.size) + " bytes, " +
                      std::to_string(PackedBytes(out.size, bits)) + " expected");
  uint64_t acc = 0;
  unsigned have = 0;
  size_t in = 0;
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  for (size_t i = 0; i < out.size; ++i) {
    while (have < bits) {
      acc |= uint64_t(src.data[in++]) << have;
      have += 8;
    }
    out.data[i] = uint8_t(acc & mask);
    acc >>= bits;
    have -= bits;
  }
  if (acc != 0)
    return Status(ErrorCode::kChunkDecodeFailed, where + ": packed stream's padding bits are not zero");
  return Status::Ok();
}

std::string Where(const Archive& a, size_t t, size_t c) {
  const ChunkInfo& chunk = a.tensors[t].chunks[c];
  return "tensors[" + std::to_string(t) + "] '" + a.tensors[t].name + "' chunks[" +
         std::to_string(c) + "] at offset " + std::to_string(chunk.offset);
}

Status DecodeZstd(ZSTD_DCtx* dctx, ByteSpan src, MutableByteSpan dst, const std::string& where) {
  const std::string error = DecodeZstdFrame(dctx, src, dst, {}, kMaxZstdWindow);
  if (!error.empty()) return Status(ErrorCode::kChunkDecodeFailed, where + ": " + error);
  return Status::Ok();
}

Status CheckIndexes(const Archive& archive, size_t tensor, size_t chunk) {
  if (tensor >= archive.tensors.size() || chunk >= archive.tensors[tensor].chunks.size())
    return Status(ErrorCode::kInvalidArgument, "tensor or chunk index out of range");
  return Status::Ok();
}

}  // namespace

Result<std::vector<StreamInfo>> ReadStreamDirectory(const Archive& archive, size_t tensor,
                                                    size_t chunk_index) {
  CKZ_RETURN_IF_ERROR(CheckIndexes(archive, tensor, chunk_index));
  const TensorInfo& t = archive.tensors[tensor];
  const ChunkInfo& chunk = t.chunks[chunk_index];
  const size_t width = DTypeSize(t.dtype);
  const bool key_split = t.predictor == Predictor::kKeySplit;
  const size_t streams = StreamCount(t.predictor, t.byte_planes, width);
  // A quantized chunk has one stream of one index byte (7.6), or one i32 level (7.9), per
  // element. (0.8) A KeySplit chunk's stream lengths follow from its reference and symbols:
  // 0 here.
  const uint64_t stream_raw = t.quantization ? chunk.raw_length / width * t.quantization->SymbolBytes()
                              : key_split    ? 0
                                             : chunk.raw_length / streams;
  const ByteSpan stored = archive.file.subspan(chunk.offset, chunk.stored_length);
  const size_t dir_bytes = streams * kStreamEntryBytes;
  if (stored.size < dir_bytes)
    return Status(ErrorCode::kChunkMalformed,
                  Where(archive, tensor, chunk_index) + ": " + std::to_string(stored.size) +
                      " stored bytes cannot hold the " + std::to_string(streams) +
                      "-entry stream directory");
  std::vector<StreamInfo> out(streams);
  uint64_t pos = dir_bytes;
  for (size_t s = 0; s < streams; ++s) {
    const uint8_t* entry = stored.data + s * kStreamEntryBytes;
    const uint64_t length = LoadLE32(entry + 1);
    const std::string where = Where(archive, tensor, chunk_index) + " stream " + std::to_string(s);
    // Spec 7.1: packed and cm code indices; cmf codes the values of an F32 tensor that has
    // neither a quantization nor byte planes; (0.7) cml, and only cml, codes levels.
    const bool float_ok = !t.quantization && t.dtype == DType::kF32 && !t.byte_planes;
    const bool levels = t.quantization && t.quantization->IsLevels();
    const uint8_t codec = entry[0];
    if (key_split && codec > uint8_t(StreamCodec::kZstd))
      return Status(ErrorCode::kChunkMalformed,
                    where + ": codec " + std::to_string(codec) + " is not 0 (stored) or 1 (zstd), "
                            "the codecs of KeySplit streams");
    if (levels && codec != uint8_t(StreamCodec::kCmLevels) &&
        codec != uint8_t(StreamCodec::kLstmLevels))
      return Status(ErrorCode::kChunkMalformed,
                    where + ": codec " + std::to_string(codec) + " is not 5 (cml) or 6 (lstm), "
                            "the codecs of level-quantized tensors");
    if (codec == uint8_t(StreamCodec::kLstmLevels) &&
        (archive.preamble.required_features & kFeatureLstm) == 0)
      return Status(ErrorCode::kChunkMalformed,
                    where + ": codec 6 (lstm) in a file without required feature bit 8");
    if (codec == uint8_t(StreamCodec::kLstmIndices) &&
        (archive.preamble.required_features & kFeatureLstmIndices) == 0)
      return Status(ErrorCode::kChunkMalformed,
                    where + ": codec 7 (lstm-cm) in a file without required feature bit 10");
    if (codec > kMaxStreamCodec ||
        ((codec == uint8_t(StreamCodec::kPacked) || codec == uint8_t(StreamCodec::kCm) ||
          codec == uint8_t(StreamCodec::kLstmIndices)) &&
         !t.quantization) ||
        (codec == uint8_t(StreamCodec::kCmFloat) && !float_ok) ||
        ((codec == uint8_t(StreamCodec::kCmLevels) ||
          codec == uint8_t(StreamCodec::kLstmLevels)) &&
         !levels))
      return Status(ErrorCode::kChunkMalformed,
                    where + ": codec " + std::to_string(codec) + " is not 0 (stored), 1 (zstd)" +
                        (t.quantization ? ", 2 (packed), 3 (cm) or 7 (lstm-cm) (5 and 6 are for "
                                          "level kinds)"
                         : float_ok     ? " or 4 (cmf) (2, packed, 3, cm, and 7, lstm-cm, are for "
                                          "quantized tensors, 5 and 6 for level kinds)"
                                        : " (2, 3 and 7 are for quantized tensors, 4 for F32 "
                                          "tensors without byte planes, 5 and 6 for level kinds)"));
    if (codec == uint8_t(StreamCodec::kCm) &&
        (archive.preamble.required_features & kFeatureContextModel) == 0)
      return Status(ErrorCode::kChunkMalformed,
                    where + ": codec 3 (cm) in a file without required feature bit 2");
    if (codec == uint8_t(StreamCodec::kCmFloat) &&
        (archive.preamble.required_features & kFeatureFloatModel) == 0)
      return Status(ErrorCode::kChunkMalformed,
                    where + ": codec 4 (cmf) in a file without required feature bit 4");
    if (length > stored.size - pos)
      return Status(ErrorCode::kChunkMalformed,
                    where + ": stored length " + std::to_string(length) +
                        " runs past the chunk's " + std::to_string(stored.size) + " bytes");
    out[s] = {static_cast<StreamCodec>(entry[0]), chunk.offset + pos, length, stream_raw};
    pos += length;
  }
  if (pos != stored.size)
    return Status(ErrorCode::kChunkMalformed,
                  Where(archive, tensor, chunk_index) + ": streams end at byte " +
                      std::to_string(pos) + " of the chunk's " + std::to_string(stored.size));
  return out;
}

namespace {

MutableByteSpan AsBytes(std::vector<int32_t>& v) {
  return MutableByteSpan(reinterpret_cast<uint8_t*>(v.data()), v.size() * 4);
}

// The model a codec-6 or codec-7 chunk codes with (spec 7.11.6, 7.11.7): the file's own or,
// resolved when its chain was opened, its parent's. `where` names the chunk.
Result<const LstmModel*> ChunkModel(const Archive& archive, StreamCodec codec,
                                    const std::string& where) {
  if (!archive.lstm_model)
    return Status(ErrorCode::kReferenceRequired,
                  where + ": codec " + std::to_string(int(codec)) + " (" + StreamCodecName(codec) +
                      ") needs the parent's LSTM model (lstm_model_from_parent), and the parent "
                      "is not open (spec 7.11.6, 7.11.7)");
  // The parser's rule LM1 makes this hold; a test build that switches LM1 off must still
  // never run a model the coder's state cannot hold.
  if (!archive.lstm_model->Runnable())
    return Status(ErrorCode::kFieldOutOfRange, where + ": the LSTM model breaks rule LM1");
  return archive.lstm_model.get();
}

}  // namespace

// Spec 7.7.2: the cm model's inputs for elements [first, first + count) of tensor t.
Status CmInputs(const Archive& archive, size_t t, uint64_t first, uint64_t count,
                ReferenceSource* source, IndexCache* cache, std::vector<uint8_t>* parent,
                std::vector<uint8_t>* aux, IndexModelInputs* in) {
  const TensorInfo& info = archive.tensors[t];
  in->centres = uint32_t(info.quantization->codebook.size());
  in->first = first;
  in->row = info.shape.size() >= 2 ? info.shape.back() : 0;
  if (archive.link) {
    if (source == nullptr)
      return Status(ErrorCode::kReferenceRequired,
                    "tensor '" + info.name + "' is coded with cm in a link: its contexts need "
                    "the parent checkpoint's indices");
    parent->resize(count);
    uint32_t centres = 0;
    CKZ_RETURN_IF_ERROR(source->ReadReferenceIndices(info, first, MutableByteSpan(*parent), &centres));
    if (centres != 0) {
      in->parent = parent->data();
      in->parent_centres = centres;
    }
  }
  const int a = CmAuxTensor(CmRoles(archive.tensors), t);
  if (a >= 0) {
    aux->resize(count);
    CKZ_RETURN_IF_ERROR(
        DecodeIndexRange(archive, size_t(a), first, MutableByteSpan(*aux), source, cache));
    in->aux = aux->data();
    in->aux_centres = uint32_t(archive.tensors[size_t(a)].quantization->codebook.size());
  }
  return Status::Ok();
}

Status LevelInputs(const Archive& archive, size_t t, uint64_t first, uint64_t count,
                   ReferenceSource* source, IndexCache* cache, std::vector<int32_t>* parent,
                   std::vector<int32_t>* aux, LevelModelInputs* in) {
  const TensorInfo& info = archive.tensors[t];
  in->first = first;
  in->row = info.shape.size() >= 2 ? info.shape.back() : 0;
  if (archive.link) {
    if (source == nullptr)
      return Status(ErrorCode::kReferenceRequired,
                    "tensor '" + info.name + "' is coded with cml in a link: its contexts need "
                    "the parent checkpoint's levels");
    parent->resize(count);
    uint32_t present = 0;
    CKZ_RETURN_IF_ERROR(source->ReadReferenceIndices(info, first, AsBytes(*parent), &present));
    if (present != 0) in->parent = parent->data();
  }
  const std::vector<CmTensorRole> roles = CmRoles(archive.tensors);
  const int a = CmAuxTensor(roles, t);
  if (a >= 0) {
    aux->resize(count);
    CKZ_RETURN_IF_ERROR(DecodeIndexRange(archive, size_t(a), first, AsBytes(*aux), source, cache));
    in->aux = aux->data();
  } else if (archive.link && (archive.preamble.required_features & kFeatureMomentContext)) {
    // (0.10) A Weight's aux levels: its Moment1's levels in the parent (spec 7.9.3).
    const int m = WeightMoment1(roles, t);
    if (m >= 0) {
      const TensorInfo probe = ParentMomentProbe(archive.tensors[size_t(m)], info);
      aux->resize(count);
      uint32_t present = 0;
      CKZ_RETURN_IF_ERROR(source->ReadReferenceIndices(probe, first, AsBytes(*aux), &present));
      if (present != 0) in->aux = aux->data();
    }
  }
  return Status::Ok();
}

// Spec 7.9.3: the chunk's levels, into `out` (its E elements).
Status ChunkDecoder::StreamLevels(const Archive& archive, size_t tensor, size_t chunk_index,
                                  const StreamInfo& stream, ReferenceSource* source,
                                  int32_t* out) {
  const TensorInfo& t = archive.tensors[tensor];
  const uint64_t count = stream.raw_length / 4;
  const uint64_t first = t.chunks[chunk_index].raw_offset / DTypeSize(t.dtype);
  if (index_cache_ && index_cache_->LookupLevels(archive, tensor, chunk_index, out, count))
    return Status::Ok();
  const ByteSpan src = archive.file.subspan(stream.offset, stream.stored_length);
  LevelModelInputs in;
  CKZ_RETURN_IF_ERROR(LevelInputs(archive, tensor, first, count, source, index_cache_,
                                  &scratch_->parent_levels, &scratch_->aux_levels, &in));
  if (stream.codec == StreamCodec::kLstmLevels) {  // spec 7.11
    auto model = ChunkModel(archive, stream.codec, Where(archive, tensor, chunk_index) + " (levels)");
    if (!model.ok()) return model.status();
    in.lstm = *model;
    in.role = LstmRoleOf(t.role);
  }
  size_t bad = 0;
  switch (DecodeLevelStream(in, src.data, src.size, out, count, &bad)) {
    case LevelDecodeResult::kOk:
      break;
    case LevelDecodeResult::kTooLarge:
      return Status(ErrorCode::kChunkDecodeFailed,
                    Where(archive, tensor, chunk_index) + " (levels): " + std::string(StreamCodecName(stream.codec)) +
                        " stream decodes element " +
                        std::to_string(first + bad) + " to a level beyond 2^24 - 1 (rule 7.9.3)");
    case LevelDecodeResult::kBadStream:
      return Status(ErrorCode::kChunkDecodeFailed,
                    Where(archive, tensor, chunk_index) + " (levels): " + std::string(StreamCodecName(stream.codec)) + " stream of " +
                        std::to_string(src.size) +
                        " bytes does not end where its last level does (rule 7.7.1)");
  }
  if (index_cache_) index_cache_->InsertLevels(archive, tensor, chunk_index, out, count);
  return Status::Ok();
}

Status ChunkDecoder::StreamIndices(const Archive& archive, size_t tensor, size_t chunk_index,
                                   const StreamInfo& stream, ReferenceSource* source,
                                   MutableByteSpan indices) {
  const TensorInfo& t = archive.tensors[tensor];
  const ChunkInfo& chunk = t.chunks[chunk_index];
  const QuantizationInfo& q = *t.quantization;
  // Built only for an error message.
  auto where = [&] {
    return Where(archive, tensor, chunk_index) +
           (q.IsLevels() ? std::string(" (levels)") : " (" + std::to_string(q.bits) + "-bit indices)");
  };
  const uint64_t count = stream.raw_length / q.SymbolBytes();
  const uint64_t first = chunk.raw_offset / DTypeSize(t.dtype);
  if (indices.size != stream.raw_length)
    return Status(ErrorCode::kInvalidArgument, "index buffer size differs from the chunk's elements");
  const ByteSpan src = archive.file.subspan(stream.offset, stream.stored_length);
  switch (stream.codec) {
    case StreamCodec::kCmLevels:  // only in level kinds (ReadStreamDirectory)
    case StreamCodec::kLstmLevels: {
      std::vector<int32_t>& levels = scratch_->levels;
      levels.resize(count);
      CKZ_RETURN_IF_ERROR(StreamLevels(archive, tensor, chunk_index, stream, source, levels.data()));
      std::memcpy(indices.data, levels.data(), indices.size);
      return Status::Ok();
    }
    case StreamCodec::kStored:
      if (src.size != count)
        return Status(ErrorCode::kChunkDecodeFailed,
                      where() + ": stored index stream has " + std::to_string(src.size) +
                          " bytes, " + std::to_string(count) + " expected");
      std::memcpy(indices.data, src.data, count);
      break;
    case StreamCodec::kZstd:
      if (!scratch_->dctx) scratch_->dctx = ZSTD_createDCtx();
      CKZ_RETURN_IF_ERROR(DecodeZstd(scratch_->dctx, src, indices, where()));
      break;
    case StreamCodec::kPacked:
      CKZ_RETURN_IF_ERROR(UnpackIndices(src, q.bits, indices, where()));
      break;
    case StreamCodec::kCmFloat:  // ReadStreamDirectory refuses it in quantized tensors
      return Status(ErrorCode::kChunkMalformed, where() + ": codec 4 (cmf) codes values, not indices");
    case StreamCodec::kCm:
    case StreamCodec::kLstmIndices: {
      // Only cm indices are worth caching: they cost a chain of other decodes.
      if (index_cache_ && index_cache_->Lookup(archive, tensor, chunk_index, indices))
        return Status::Ok();
      IndexModelInputs in;
      CKZ_RETURN_IF_ERROR(CmInputs(archive, tensor, first, count, source, index_cache_,
                                   &scratch_->parent_indices, &scratch_->aux_indices, &in));
      if (stream.codec == StreamCodec::kLstmIndices) {  // spec 7.11.7
        auto model = ChunkModel(archive, stream.codec, where());
        if (!model.ok()) return model.status();
        in.lstm = *model;
        in.role = LstmRoleOf(t.role);
      }
      size_t bad = 0;
      switch (DecodeIndexStream(in, src.data, src.size, indices.data, count, &bad)) {
        case IndexDecodeResult::kOk:
          break;
        case IndexDecodeResult::kIndexTooLarge:
          return Status(ErrorCode::kCodebookIndex,
                        where() + ": " + StreamCodecName(stream.codec) +
                            " stream decodes element " + std::to_string(first + bad) +
                            " to an index beyond the codebook's " +
                            std::to_string(q.codebook.size()) + " centres");
        case IndexDecodeResult::kBadStream:
          return Status(ErrorCode::kChunkDecodeFailed,
                        where() + ": " + StreamCodecName(stream.codec) + " stream of " +
                            std::to_string(src.size) +
                            " bytes does not end where its last index does (rule 7.7.1)");
      }
      break;
    }
  }
  for (uint64_t i = 0; i < count; ++i)
    if (indices.data[i] > q.codebook.size())
      return Status(ErrorCode::kCodebookIndex,
                    where() + ": element " + std::to_string(first + i) + " has index " +
                        std::to_string(indices.data[i]) + "; the codebook has " +
                        std::to_string(q.codebook.size()) + " centres");
  if (index_cache_ && (stream.codec == StreamCodec::kCm || stream.codec == StreamCodec::kLstmIndices))
    index_cache_->Insert(archive, tensor, chunk_index, ByteSpan(indices.data, indices.size));
  return Status::Ok();
}

Status ChunkDecoder::DecodeIndices(const Archive& archive, size_t tensor, size_t chunk_index,
                                   ReferenceSource* source, MutableByteSpan indices) {
  CKZ_RETURN_IF_ERROR(CheckIndexes(archive, tensor, chunk_index));
  if (!archive.tensors[tensor].quantization)
    return Status(ErrorCode::kInvalidArgument, "tensor '" + archive.tensors[tensor].name +
                                                   "' is not quantized: it has no indices");
  auto directory = ReadStreamDirectory(archive, tensor, chunk_index);
  if (!directory.ok()) return directory.status();
  return StreamIndices(archive, tensor, chunk_index, (*directory)[0], source, indices);
}

Status ChunkDecoder::DecodeQuantized(const Archive& archive, size_t tensor, size_t chunk_index,
                                     const StreamInfo& stream, ByteSpan reference,
                                     MutableByteSpan out, ReferenceSource* source) {
  const TensorInfo& t = archive.tensors[tensor];
  const ChunkInfo& chunk = t.chunks[chunk_index];
  const QuantizationInfo& q = *t.quantization;
  const uint64_t count = stream.raw_length / q.SymbolBytes();
  if (q.IsLevels()) {
    std::vector<int32_t>& levels = scratch_->levels;
    levels.resize(count);
    CKZ_RETURN_IF_ERROR(StreamLevels(archive, tensor, chunk_index, stream, source, levels.data()));
    // Spec 7.9.1: the step shifts follow the parent's decoded step source.
    std::vector<int8_t>& shifts = scratch_->shifts;
    shifts.resize(count);
    const uint8_t* step_source = nullptr;
    DType source_dtype = DType::kF32;
    if (q.step_source >= 0) {
      const TensorInfo& s = archive.tensors[size_t(q.step_source)];
      source_dtype = s.dtype;
      if (source == nullptr)
        return Status(ErrorCode::kReferenceRequired,
                      Where(archive, tensor, chunk_index) + ": its steps follow the parent's '" +
                          s.name + "', and the parent checkpoint is not available");
      const size_t sw = DTypeSize(s.dtype);
      scratch_->step_source.resize(count * sw);
      CKZ_RETURN_IF_ERROR(source->ReadReference(
          s, chunk.raw_offset / DTypeSize(t.dtype) * sw, MutableByteSpan(scratch_->step_source)));
      step_source = scratch_->step_source.data();
    }
    StepShifts(q, source_dtype, step_source, count, shifts.data());
    ReconstructLevels(q, t.dtype, levels.data(), shifts.data(), count,
                      q.NeedsReference() ? reference.data : nullptr, out.data);
  } else {
    std::vector<uint8_t>& indices = scratch_->streams;
    indices.resize(stream.raw_length);
    CKZ_RETURN_IF_ERROR(
        StreamIndices(archive, tensor, chunk_index, stream, source, MutableByteSpan(indices)));
    ReconstructQuantized(q, t.dtype, indices.data(), count,
                         q.kind == QuantKind::kResidual ? reference.data : nullptr, out.data);
  }
  if (Crc32c(out.data, out.size) != chunk.crc32c)
    return Status(ErrorCode::kChunkChecksum,
                  Where(archive, tensor, chunk_index) + ": decoded bytes fail their CRC-32C");
  return Status::Ok();
}

// Spec 7.8: a cmf stream decodes straight to the chunk's values; no planes, no predictor step.
Status ChunkDecoder::DecodeFloats(const Archive& archive, size_t tensor, size_t chunk_index,
                                  const StreamInfo& stream, ByteSpan reference,
                                  MutableByteSpan out) {
  const ChunkInfo& chunk = archive.tensors[tensor].chunks[chunk_index];
  const ByteSpan src = archive.file.subspan(stream.offset, stream.stored_length);
  const size_t count = out.size / 4;
  size_t bad = 0;
  switch (DecodeFloatStream(src.data, src.size, reference.size ? reference.data : nullptr,
                            out.data, count, &bad)) {
    case FloatDecodeResult::kOk:
      break;
    case FloatDecodeResult::kBadSymbol:
      return Status(ErrorCode::kChunkDecodeFailed,
                    Where(archive, tensor, chunk_index) + ": cmf stream decodes element " +
                        std::to_string(chunk.raw_offset / 4 + bad) +
                        " to an invalid size class or exponent (rule 7.8)");
    case FloatDecodeResult::kBadStream:
      return Status(ErrorCode::kChunkDecodeFailed,
                    Where(archive, tensor, chunk_index) + ": cmf stream of " +
                        std::to_string(src.size) +
                        " bytes does not end where its last value does (rule 7.7.1)");
  }
  if (Crc32c(out.data, out.size) != chunk.crc32c)
    return Status(ErrorCode::kChunkChecksum,
                  Where(archive, tensor, chunk_index) + ": decoded bytes fail their CRC-32C");
  return Status::Ok();
}

// Spec 7.10: the symbol streams (their lengths counted from the reference's exponent
// classes), the symbols' check, the bit stream, then the values; no planes.
Status ChunkDecoder::DecodeKeySplit(const Archive& archive, size_t tensor, size_t chunk_index,
                                    const std::vector<StreamInfo>& streams, ByteSpan reference,
                                    MutableByteSpan out) {
  const TensorInfo& t = archive.tensors[tensor];
  const ChunkInfo& chunk = t.chunks[chunk_index];
  const size_t count = out.size / 2;
  auto decode_stream = [&](size_t s, MutableByteSpan dst) -> Status {
    const StreamInfo& stream = streams[s];
    const ByteSpan src = archive.file.subspan(stream.offset, stream.stored_length);
    const std::string where = Where(archive, tensor, chunk_index) + " stream " + std::to_string(s);
    if (stream.codec == StreamCodec::kStored) {
      if (src.size != dst.size)
        return Status(ErrorCode::kChunkDecodeFailed,
                      where + ": stored stream has " + std::to_string(src.size) + " bytes, " +
                          std::to_string(dst.size) + " expected (rule 7.10)");
      std::memcpy(dst.data, src.data, dst.size);
      return Status::Ok();
    }
    if (!scratch_->dctx) scratch_->dctx = ZSTD_createDCtx();
    return DecodeZstd(scratch_->dctx, src, dst, where);
  };
  uint64_t counts[kKeySplitClasses];
  KeySplitCounts(t.dtype, reference.data, count, counts);
  std::vector<uint8_t>& symbols = scratch_->key_symbols;
  symbols.resize(count);
  const uint8_t* starts[kKeySplitClasses];
  uint64_t at = 0;
  for (size_t c = 0; c < kKeySplitClasses; ++c) {
    starts[c] = symbols.data() + at;
    CKZ_RETURN_IF_ERROR(decode_stream(c, MutableByteSpan(symbols.data() + at, counts[c])));
    at += counts[c];
  }
  uint64_t rest_bits = 0;
  size_t bad = 0;
  if (!KeySplitRestBits(t.dtype, reference.data, counts, starts, count, &rest_bits, &bad))
    return Status(ErrorCode::kChunkDecodeFailed,
                  Where(archive, tensor, chunk_index) + ": element " +
                      std::to_string(chunk.raw_offset / 2 + bad) +
                      " has an invalid KeySplit symbol (rule 7.10)");
  std::vector<uint8_t>& bits = scratch_->key_bits;
  const size_t bit_bytes = size_t((rest_bits + 7) / 8);
  bits.resize(bit_bytes + 8);  // KeySplitInverse's read-ahead
  CKZ_RETURN_IF_ERROR(decode_stream(kKeySplitClasses, MutableByteSpan(bits.data(), bit_bytes)));
  if (!KeySplitInverse(t.dtype, reference.data, starts, bits.data(), bit_bytes, count, out.data))
    return Status(ErrorCode::kChunkDecodeFailed,
                  Where(archive, tensor, chunk_index) +
                      ": the KeySplit bit stream's padding bits are not zero (rule 7.10)");
  if (Crc32c(out.data, out.size) != chunk.crc32c)
    return Status(ErrorCode::kChunkChecksum,
                  Where(archive, tensor, chunk_index) + ": decoded bytes fail their CRC-32C");
  return Status::Ok();
}

Status DecodeIndexRange(const Archive& archive, size_t tensor, uint64_t first,
                        MutableByteSpan out, ReferenceSource* reference, IndexCache* cache) {
  if (tensor >= archive.tensors.size() || !archive.tensors[tensor].quantization)
    return Status(ErrorCode::kInvalidArgument, "DecodeIndexRange: not a quantized tensor");
  const TensorInfo& t = archive.tensors[tensor];
  const uint64_t sb = t.quantization->SymbolBytes();  // bytes per element's index or level
  if (out.size % sb != 0 || first > t.num_elements || out.size / sb > t.num_elements - first)
    return Status(ErrorCode::kInvalidArgument, "index range outside tensor '" + t.name + "'");
  const uint64_t w = DTypeSize(t.dtype);
  PooledScratch scratch;
  ChunkDecoder& decoder = scratch->decoder;
  decoder.set_index_cache(cache);
  std::vector<uint8_t>& buf = scratch->buffer;
  const uint64_t end = first + out.size / sb;
  // From the chunk holding element `first` (raw offsets ascend: section 4.3).
  auto from = std::upper_bound(t.chunks.begin(), t.chunks.end(), first * w,
                               [](uint64_t v, const ChunkInfo& c) { return v < c.raw_offset; });
  if (from != t.chunks.begin()) --from;
  for (size_t c = size_t(from - t.chunks.begin()); c < t.chunks.size(); ++c) {
    const uint64_t lo = t.chunks[c].raw_offset / w, n = t.chunks[c].raw_length / w;
    if (lo >= end) break;
    if (lo + n <= first) continue;
    // A whole chunk goes straight into `out`.
    if (lo >= first && lo + n <= end) {
      CKZ_RETURN_IF_ERROR(decoder.DecodeIndices(archive, tensor, c, reference,
                                                out.subspan((lo - first) * sb, n * sb)));
      continue;
    }
    buf.resize(n * sb);
    CKZ_RETURN_IF_ERROR(decoder.DecodeIndices(archive, tensor, c, reference, MutableByteSpan(buf)));
    const uint64_t a = std::max(first, lo), b = std::min(end, lo + n);
    std::memcpy(out.data + (a - first) * sb, buf.data() + (a - lo) * sb, (b - a) * sb);
  }
  return Status::Ok();
}

Status ReferenceSource::ReadReferenceIndices(const TensorInfo& tensor, uint64_t, MutableByteSpan,
                                             uint32_t*) {
  return Status(ErrorCode::kReferenceRequired,
                "tensor '" + tensor.name + "' needs the parent checkpoint's indices, which this "
                "reference source does not supply");
}

Status ChunkDecoder::Decode(const Archive& archive, size_t tensor, size_t chunk_index,
                            ByteSpan reference, MutableByteSpan out, ReferenceSource* source) {
  CKZ_RETURN_IF_ERROR(CheckIndexes(archive, tensor, chunk_index));
  const TensorInfo& t = archive.tensors[tensor];
  const ChunkInfo& chunk = t.chunks[chunk_index];
  if (out.size != chunk.raw_length)
    return Status(ErrorCode::kInvalidArgument, "output buffer size differs from raw_length");
  const bool predicted = t.NeedsReference();
  if (predicted && reference.size != chunk.raw_length)
    return Status(ErrorCode::kReferenceRequired,
                  Where(archive, tensor, chunk_index) + " is predicted (" +
                      PredictorName(t.predictor) + ") and needs " +
                      std::to_string(chunk.raw_length) + " reference bytes");

  auto directory = ReadStreamDirectory(archive, tensor, chunk_index);
  if (!directory.ok()) return directory.status();
  if (t.quantization)
    return DecodeQuantized(archive, tensor, chunk_index, (*directory)[0], reference, out, source);
  const size_t width = DTypeSize(t.dtype);
  if (t.predictor == Predictor::kKeySplit)
    return DecodeKeySplit(archive, tensor, chunk_index, *directory, reference, out);
  if ((*directory)[0].codec == StreamCodec::kCmFloat)
    return DecodeFloats(archive, tensor, chunk_index, (*directory)[0],
                        predicted ? reference : ByteSpan(), out);
  // Only a transformed chunk needs its streams apart from the output: a stored stream is read
  // where it lies in the file, a zstd stream is decoded into a staging buffer. Otherwise the
  // streams decode in place.
  const bool transformed = predicted || (t.byte_planes && width > 1);
  if (directory->size() > 8)  // S is 1 or w here (7.1), at most 8
    return Status(ErrorCode::kChunkMalformed, Where(archive, tensor, chunk_index) + ": too many streams");
  const uint8_t* streams[8] = {};
  uint8_t* staging = out.data;
  if (transformed) {
    scratch_->streams.resize(chunk.raw_length);
    staging = scratch_->streams.data();
  }
  uint64_t raw_pos = 0;
  for (size_t s = 0; s < directory->size(); ++s) {
    const StreamInfo& stream = (*directory)[s];
    const ByteSpan src = archive.file.subspan(stream.offset, stream.stored_length);
    const MutableByteSpan dst(staging + raw_pos, stream.raw_length);
    raw_pos += stream.raw_length;
    streams[s] = dst.data;
    if (stream.codec == StreamCodec::kStored) {
      if (stream.stored_length != stream.raw_length)
        return Status(ErrorCode::kChunkDecodeFailed,
                      Where(archive, tensor, chunk_index) + " stream " + std::to_string(s) +
                          ": stored stream has " + std::to_string(stream.stored_length) +
                          " bytes, " + std::to_string(stream.raw_length) + " expected");
      if (transformed)
        streams[s] = src.data;
      else
        std::memcpy(dst.data, src.data, dst.size);
    } else {
      if (!scratch_->dctx) scratch_->dctx = ZSTD_createDCtx();
      CKZ_RETURN_IF_ERROR(DecodeZstd(scratch_->dctx, src, dst,
                                     Where(archive, tensor, chunk_index) + " stream " +
                                         std::to_string(s)));
    }
  }

  const uint8_t* ref = predicted ? reference.data : nullptr;
  if (transformed && t.byte_planes && width > 1)
    InverseTransformPlanes(t.predictor, width, streams, ref, chunk.raw_length, out.data);
  else if (transformed)
    InverseTransform(t.predictor, false, width, streams[0], ref, chunk.raw_length, out.data);
  const uint32_t crc = Crc32c(out.data, out.size);
  if (crc != chunk.crc32c)
    return Status(ErrorCode::kChunkChecksum,
                  Where(archive, tensor, chunk_index) + ": decoded bytes fail their CRC-32C");
  return Status::Ok();
}

}  // namespace ckz
