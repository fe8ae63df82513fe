// ParseArchive: preamble, header checksum, FlatBuffers verification, then the semantic pass
// of spec section 9 in its order. The FlatBuffers verifier only proves that reading the
// buffer is memory-safe; everything the format means is checked here.
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_set>

#include "ckz/archive.h"
#include "ckz_generated.h"
#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/quantize.h"
#include "common/rule_switch.h"
#include "common/utf8.h"
#include "common/zstd_frame.h"
#include "format/rules.h"

namespace ckz {
namespace {

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

Status OutOfRange(const std::string& field, uint64_t value, const std::string& domain) {
  return Status(ErrorCode::kFieldOutOfRange,
                field + " = " + std::to_string(value) + " is outside " + domain);
}

Status CheckUtf8(const flatbuffers::String* s, const std::string& field) {
  if (s && !IsValidUtf8(s->string_view()))
    return Status(ErrorCode::kBadName, field + " is not valid UTF-8");
  return Status::Ok();
}

// Rules H4 and H6: a content id field holds exactly 32 bytes.
Status CheckContentId(const flatbuffers::Vector<uint8_t>* v, const std::string& field) {
  if (!v || v->size() != ContentId().size())
    return Status(ErrorCode::kFieldOutOfRange,
                  field + " must be 32 bytes, has " + std::to_string(v ? v->size() : 0));
  return Status::Ok();
}

// The field (required, so present after verification) into `out`: all of it once checked.
void CopyContentId(const flatbuffers::Vector<uint8_t>* v, ContentId* out) {
  out->fill(0);
  std::memcpy(out->data(), v->data(), std::min<size_t>(v->size(), out->size()));
}

Status ParseLink(const fb::Link* link, LinkInfo* out) {
  if (CKZ_RULE_ON(H6))
    CKZ_RETURN_IF_ERROR(CheckContentId(link->parent_content_id(), "link.parent_content_id"));
  CopyContentId(link->parent_content_id(), &out->parent_content_id);
  if (link->parent_step().has_value()) out->parent_step = *link->parent_step();
  if (link->path_hint()) {
    if (CKZ_RULE_ON(H6))
      CKZ_RETURN_IF_ERROR(CheckRelativePath(link->path_hint()->string_view(), "link.path_hint"));
    out->path_hint = link->path_hint()->str();
  }
  out->depth = link->depth();
  if (CKZ_RULE_ON(H6) && out->depth == 0)
    return Status(ErrorCode::kBadLink, "link.depth is 0; a link is at least 1 away from its "
                                       "keyframe (a keyframe has no link)");
  return Status::Ok();
}

// Rule Q9 (0.7): the fields of a level kind describe steps a decoder can apply exactly.
Status CheckLevelFields(const QuantizationInfo& q, uint32_t centres, const std::string& field) {
  const std::string f = field + ".quantization";
  if (q.bits != 0 || centres != 0)
    return Status(ErrorCode::kFieldOutOfRange,
                  f + " has a level kind but bits " + std::to_string(q.bits) + " and " +
                      std::to_string(centres) + " centres (both must be 0)");
  if (q.step_limit > kMaxStepLimit)
    return OutOfRange(f + ".step_limit", q.step_limit, "0..32");
  if (!StepRangeIsNormal(q.step, q.step_limit))
    return Status(ErrorCode::kFieldOutOfRange,
                  f + ".step " + std::to_string(q.step) + " times 2^-" +
                      std::to_string(q.step_limit) + " .. 2^" + std::to_string(q.step_limit) +
                      " is not always a normal, finite, positive binary32");
  if (q.kind == QuantKind::kLevelLog ? (q.log_unit < kMinLogUnit || q.log_unit > kMaxLogUnit)
                                     : q.log_unit != 0)
    return Status(ErrorCode::kFieldOutOfRange,
                  f + ".log_unit " + std::to_string(q.log_unit) +
                      (q.kind == QuantKind::kLevelLog ? " is not -4..4" : " must be 0 (not LevelLog)"));
  if (q.step_source < -1)
    return Status(ErrorCode::kFieldOutOfRange,
                  f + ".step_source " + std::to_string(q.step_source) + " is below -1");
  if (q.step_source == -1 ? (q.step_slope != 0 || q.step_center != 0 || q.step_limit != 0)
                          : (q.step_slope != 1 && q.step_slope != -1))
    return Status(ErrorCode::kFieldOutOfRange,
                  f + ".step_slope " + std::to_string(q.step_slope) +
                      (q.step_source == -1 ? " (and step_center, step_limit) must be 0 without a "
                                             "step_source"
                                           : " must be 1 or -1 with a step_source"));
  if (q.step_center < -1100 || q.step_center > 1100)
    return Status(ErrorCode::kFieldOutOfRange,
                  f + ".step_center " + std::to_string(q.step_center) + " is not -1100..1100");
  return Status::Ok();
}

// Rules Q2..Q8 (spec 9): a quantization that a decoder can apply; (0.7) Q9, the level kinds'
// fields (the step source's index is rule Q10, checked once every tensor is known).
Status ParseQuantization(const fb::Quantization* q, const std::string& field, bool has_link,
                         TensorInfo* out) {
  QuantizationInfo info;
  const auto kind = static_cast<uint8_t>(q->kind());
  if (kind == 0 || kind > kMaxQuantKind)
    return OutOfRange(field + ".quantization.kind", kind, "the kinds 1..5");
  info.kind = static_cast<QuantKind>(kind);
  info.bits = q->bits();
  const auto* codebook = q->codebook();
  info.step = q->step();
  info.step_source = q->step_source();
  info.step_slope = q->step_slope();
  info.step_center = q->step_center();
  info.step_limit = q->step_limit();
  info.log_unit = q->log_unit();
  if (!info.IsLevels()) {
    if (CKZ_RULE_ON(Q3) && (info.bits == 0 || info.bits > kMaxQuantBits))
      return OutOfRange(field + ".quantization.bits", info.bits, "1..8");
    const uint32_t max_centres = (1u << info.bits) - 1;
    if (CKZ_RULE_ON(Q4) && (!codebook || codebook->size() == 0 || codebook->size() > max_centres))
      return Status(ErrorCode::kFieldOutOfRange,
                    field + ".quantization.codebook has " +
                        std::to_string(codebook ? codebook->size() : 0) + " centres; " +
                        std::to_string(info.bits) + "-bit indices allow 1.." +
                        std::to_string(max_centres));
    for (uint32_t i = 0; codebook && i < codebook->size(); ++i) {
      const float c = codebook->Get(i);
      if (CKZ_RULE_ON(Q4) && !std::isfinite(c))
        return Status(ErrorCode::kFieldOutOfRange,
                      field + ".quantization.codebook[" + std::to_string(i) + "] is not finite");
      info.codebook.push_back(c);
    }
    if (CKZ_RULE_ON(Q4) &&
        (F32Bits(info.step) != 0 || info.step_source != -1 || info.step_slope != 0 ||
         info.step_center != 0 || info.step_limit != 0 || info.log_unit != 0))
      return Status(ErrorCode::kFieldOutOfRange,
                    field + ".quantization has " + QuantKindName(info.kind) +
                        " kind but sets a field of the level kinds (step, step_source, "
                        "step_slope, step_center, step_limit, log_unit)");
  } else if (CKZ_RULE_ON(Q9)) {
    CKZ_RETURN_IF_ERROR(CheckLevelFields(info, codebook ? codebook->size() : 0, field));
  }
  info.prune_k = q->prune_k();
  info.prune_threshold = q->prune_threshold();
  if (!DTypeIsFloat(out->dtype))
    return Status(ErrorCode::kFieldOutOfRange,
                  field + " is quantized but its dtype " + DTypeName(out->dtype) +
                      " is not floating");
  if (CKZ_RULE_ON(Q6) && (out->predictor != Predictor::kNone || out->byte_planes))
    return Status(ErrorCode::kFieldOutOfRange,
                  field + " is quantized: it has no predictor and no byte planes");
  if (CKZ_RULE_ON(Q7) && (info.NeedsReference() || info.step_source != -1) && !has_link)
    return Status(ErrorCode::kBadLink,
                  field + " is quantized " +
                      (info.NeedsReference() ? "as a residual of a reference"
                                             : "with steps taken from the parent") +
                      " but the file has no link");
  info.reference_scale = q->reference_scale();
  const bool direct = info.kind == QuantKind::kDirect || info.kind == QuantKind::kLevelDirect;
  if (CKZ_RULE_ON(Q8) &&
      (!std::isfinite(info.reference_scale) || !(info.reference_scale > 0) ||
       (direct && info.reference_scale != 1.0f)))
    return Status(ErrorCode::kFieldOutOfRange,
                  field + ".quantization.reference_scale must be finite and > 0 (exactly 1 for "
                          "a Direct or LevelDirect quantization)");
  out->quantization = std::move(info);
  return Status::Ok();
}

// Rule Q10 (0.7): a level tensor's step source is another floating tensor of its shape.
Status CheckStepSources(const std::vector<TensorInfo>& tensors) {
  for (size_t t = 0; t < tensors.size(); ++t) {
    if (!tensors[t].quantization || tensors[t].quantization->step_source < 0) continue;
    const int32_t s = tensors[t].quantization->step_source;
    const std::string field = "tensors[" + std::to_string(t) + "] " + Quote(tensors[t].name) +
                              ".quantization.step_source " + std::to_string(s);
    if (size_t(s) >= tensors.size() || size_t(s) == t)
      return Status(ErrorCode::kFieldOutOfRange,
                    field + " is not the index of another tensor (" +
                        std::to_string(tensors.size()) + " tensors)");
    const TensorInfo& src = tensors[size_t(s)];
    if (!DTypeIsFloat(src.dtype) || src.shape != tensors[t].shape)
      return Status(ErrorCode::kFieldOutOfRange,
                    field + " names '" + src.name + "', which is not a floating tensor of the "
                            "same shape");
  }
  return Status::Ok();
}

// FlatBuffers 2.0.8's verifier checks only the 4-byte alignment of a vector's length, so
// vectors of 8-byte elements are checked here (the buffer itself is 8-aligned).
template <typename V>
Status CheckElementsAligned(const V* v, const std::string& field) {
  if (v && v->size() > 0 && reinterpret_cast<uintptr_t>(v->Data()) % 8 != 0)
    return Status(ErrorCode::kHeaderMalformed,
                  field + ": elements are not 8-byte aligned in the header");
  return Status::Ok();
}

// Rule H3's alignment half, for every vector of 8-byte elements, before any T or F rule.
Status CheckVectorsAligned(const fb::Header* h) {
  if (const auto* tensors = h->tensors())
    for (uint32_t i = 0; i < tensors->size(); ++i) {
      const fb::Tensor* t = tensors->Get(i);
      const std::string field = "tensors[" + std::to_string(i) + "]";
      CKZ_RETURN_IF_ERROR(CheckElementsAligned(t->shape(), field + ".shape"));
      CKZ_RETURN_IF_ERROR(CheckElementsAligned(t->chunks(), field + ".chunks"));
    }
  if (const auto* files = h->files())
    for (uint32_t i = 0; i < files->size(); ++i) {
      const fb::SourceFile* f = files->Get(i);
      const std::string field = "files[" + std::to_string(i) + "]";
      CKZ_RETURN_IF_ERROR(CheckElementsAligned(f->splits(), field + ".splits"));
      CKZ_RETURN_IF_ERROR(CheckElementsAligned(f->crc32_patches(), field + ".crc32_patches"));
    }
  return Status::Ok();
}

Status ParseTensor(const fb::Tensor* t, size_t index, bool has_link, const Limits& limits,
                   uint64_t file_size, TensorInfo* out) {
  std::string field = "tensors[" + std::to_string(index) + "]";
  if (CKZ_RULE_ON(T1)) CKZ_RETURN_IF_ERROR(CheckName(t->name()->string_view(), field + ".name"));
  out->name = t->name()->str();
  field += " " + Quote(out->name);

  const auto dtype = static_cast<uint8_t>(t->dtype());
  if (dtype == 0 || dtype > kMaxDType)
    return OutOfRange(field + ".dtype", dtype, "the dtypes 1..10");
  out->dtype = static_cast<DType>(dtype);
  if (t->shape()) out->shape.assign(t->shape()->begin(), t->shape()->end());
  CKZ_RETURN_IF_ERROR(
      ShapeBytes(out->shape, out->dtype, field + ".shape", &out->num_elements, &out->byte_length));
  if (out->byte_length > limits.max_tensor_bytes)
    return Status(ErrorCode::kLimitExceeded,
                  field + " declares " + std::to_string(out->byte_length) +
                      " bytes, above this reader's limit of " +
                      std::to_string(limits.max_tensor_bytes));

  const auto role = static_cast<uint8_t>(t->role());
  if (CKZ_RULE_ON(T5) && role > kMaxRole)
    return OutOfRange(field + ".role", role, "the roles 0..3");
  out->role = static_cast<Role>(role);
  out->owner = t->owner();

  const auto predictor = static_cast<uint8_t>(t->predictor());
  if (CKZ_RULE_ON(T6) && predictor > kMaxPredictor)
    return OutOfRange(field + ".predictor", predictor, "the predictors 0..3");
  out->predictor = static_cast<Predictor>(predictor);
  if (CKZ_RULE_ON(T7) && out->predictor != Predictor::kNone && !has_link)
    return Status(ErrorCode::kBadLink, field + " is predicted from a reference (" +
                                           PredictorName(out->predictor) +
                                           ") but the file has no link");
  out->byte_planes = t->byte_planes();
  // (0.8) Rule T11: KeySplit codes 16-bit floats, in its own ten streams (spec 7.10).
  if (CKZ_RULE_ON(T11) && out->predictor == Predictor::kKeySplit &&
      ((out->dtype != DType::kF16 && out->dtype != DType::kBF16) || out->byte_planes))
    return Status(ErrorCode::kFieldOutOfRange,
                  field + " has predictor KeySplit, which needs dtype F16 or BF16 and byte_planes "
                          "false (it has " + DTypeName(out->dtype) +
                          (out->byte_planes ? ", byte planes)" : ")"));
  if (t->quantization())
    CKZ_RETURN_IF_ERROR(ParseQuantization(t->quantization(), field, has_link, out));

  const size_t element = DTypeSize(out->dtype);
  uint64_t raw_offset = 0;
  if (const auto* chunks = t->chunks()) {
    out->chunks.reserve(chunks->size());
    for (uint32_t i = 0; i < chunks->size(); ++i) {
      const fb::Chunk* c = chunks->Get(i);
      const std::string cf = field + ".chunks[" + std::to_string(i) + "]";
      ChunkInfo chunk;
      chunk.offset = c->offset();
      chunk.stored_length = c->stored_length();
      chunk.raw_length = c->raw_length();
      chunk.crc32c = c->crc32c();
      if (CKZ_RULE_ON(T8) && c->reserved() != 0)
        return Status(ErrorCode::kNonzeroPadding, cf + ".reserved is " +
                                                      std::to_string(c->reserved()) +
                                                      ", must be 0");
      if (CKZ_RULE_ON(T8) && (chunk.raw_length == 0 || chunk.raw_length > kMaxChunkRawBytes ||
                              chunk.raw_length % element != 0))
        return Status(ErrorCode::kChunkLayout,
                      cf + ".raw_length " + std::to_string(chunk.raw_length) +
                          " is not a whole number (>= 1) of " + std::to_string(element) +
                          "-byte elements up to " + std::to_string(kMaxChunkRawBytes) + " bytes");
      if (CKZ_RULE_ON(T8) && chunk.stored_length == 0)
        return Status(ErrorCode::kChunkLayout, cf + ".stored_length is 0");
      if (CKZ_RULE_ON(T8) && chunk.offset % kAlignment != 0)
        return Status(ErrorCode::kMisaligned, cf + ".offset " + std::to_string(chunk.offset) +
                                                  " is not a multiple of 64");
      if (chunk.offset > file_size || chunk.stored_length > file_size - chunk.offset)
        return Status(ErrorCode::kRangeOutOfFile,
                      cf + " [" + std::to_string(chunk.offset) + ", +" +
                          std::to_string(chunk.stored_length) + ") ends past the end of the " +
                          std::to_string(file_size) + "-byte file");
      if (CKZ_RULE_ON(T8) && chunk.raw_length > out->byte_length - raw_offset)
        return Status(ErrorCode::kChunkLayout,
                      cf + " decodes past the tensor's " + std::to_string(out->byte_length) +
                          " bytes");
      chunk.raw_offset = raw_offset;
      raw_offset += chunk.raw_length;
      out->stored_length += chunk.stored_length;
      out->chunks.push_back(chunk);
    }
  }
  if (raw_offset != out->byte_length)
    return Status(ErrorCode::kChunkLayout, field + ": chunks cover " + std::to_string(raw_offset) +
                                               " of the tensor's " +
                                               std::to_string(out->byte_length) + " bytes");
  return Status::Ok();
}

Status CheckOwners(const std::vector<TensorInfo>& tensors) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = tensors[i];
    if (t.owner == -1) continue;
    const std::string field = "tensors[" + std::to_string(i) + "] " + Quote(t.name) + ".owner";
    if (t.owner < -1 || size_t(t.owner) >= tensors.size() || size_t(t.owner) == i)
      return Status(ErrorCode::kBadOwner,
                    field + " = " + std::to_string(t.owner) + " is not another tensor's index");
    const TensorInfo& w = tensors[size_t(t.owner)];
    if (t.role != Role::kMoment1 && t.role != Role::kMoment2)
      return Status(ErrorCode::kBadOwner, field + " is set but the role is " + RoleName(t.role) +
                                              "; only moment1/moment2 have an owner");
    if (w.role != Role::kWeight)
      return Status(ErrorCode::kBadOwner, field + " names " + Quote(w.name) + " whose role is " +
                                              RoleName(w.role) + ", not weight");
    if (w.shape != t.shape)
      return Status(ErrorCode::kBadOwner, field + " names " + Quote(w.name) +
                                              " whose shape differs");
  }
  return Status::Ok();
}

Status ParseMetadata(const fb::MetaEntry* e, size_t index, MetaEntry* out) {
  const std::string field = "metadata[" + std::to_string(index) + "]";
  if (CKZ_RULE_ON(M1)) CKZ_RETURN_IF_ERROR(CheckName(e->key()->string_view(), field + ".key"));
  out->key = e->key()->str();
  switch (e->value_type()) {
    case fb::MetaValue::IntValue:
      out->value = int64_t{e->value_as_IntValue()->value()};
      break;
    case fb::MetaValue::FloatValue:
      out->value = e->value_as_FloatValue()->value();
      break;
    case fb::MetaValue::StringValue: {
      const auto* s = e->value_as_StringValue()->value();
      if (CKZ_RULE_ON(M3)) CKZ_RETURN_IF_ERROR(CheckUtf8(s, field + ".value"));
      out->value = s->str();
      break;
    }
    case fb::MetaValue::BytesValue: {
      const auto* b = e->value_as_BytesValue()->value();
      out->value = std::vector<uint8_t>(b->begin(), b->end());
      break;
    }
    case fb::MetaValue::BoolValue:
      out->value = e->value_as_BoolValue()->value();
      break;
    default:
      if (CKZ_RULE_ON(M2))
        return OutOfRange(field + ".value_type", uint8_t(e->value_type()), "the value types 1..5");
  }
  return Status::Ok();
}

// Rules F9 and F10 (0.5): a coded prolog is a non-empty frame with a decoded length in
// 1..kMaxPrologBytes (and the reader's limit), nothing coded-only is set on a stored prolog;
// then ZstdParent only in a link. The frame itself is decoded later (DecodeProlog).
Status ParsePrologCoding(const fb::SourceFile* f, const std::string& field, bool has_link,
                         const Limits& limits, SourceFileInfo* out) {
  const auto codec = static_cast<uint8_t>(f->prolog_codec());
  const bool f9 = CKZ_RULE_ON(F9);
  if (f9 && codec > kMaxPrologCodec)
    return OutOfRange(field + ".prolog_codec", codec, "the prolog codecs 0..2");
  out->prolog_codec = static_cast<PrologCodec>(codec);
  if (out->prolog_codec == PrologCodec::kStored) {
    if (f9 &&
        (f->prolog_raw_length() != 0 || f->prolog_crc32c() != 0 || f->prolog_parent_file() != 0))
      return Status(ErrorCode::kFieldOutOfRange,
                    field + " has a stored prolog but a prolog_raw_length, prolog_crc32c or "
                            "prolog_parent_file");
    if (f->prolog()) out->prolog.assign(f->prolog()->begin(), f->prolog()->end());
    return Status::Ok();
  }
  if (f9 && out->prolog_codec == PrologCodec::kZstd && f->prolog_parent_file() != 0)
    return Status(ErrorCode::kFieldOutOfRange,
                  field + ".prolog_parent_file is set but the prolog codec is Zstd (1)");
  if (f9 && (f->prolog_raw_length() == 0 || f->prolog_raw_length() > kMaxPrologBytes))
    return OutOfRange(field + ".prolog_raw_length", f->prolog_raw_length(),
                      "1 .. 2^30 for a coded prolog");
  if (f9 && f->prolog_raw_length() > limits.max_prolog_bytes)
    return Status(ErrorCode::kLimitExceeded,
                  field + ".prolog_raw_length " + std::to_string(f->prolog_raw_length()) +
                      " is above this reader's limit of " +
                      std::to_string(limits.max_prolog_bytes) + " bytes");
  if (f9 && (!f->prolog() || f->prolog()->size() == 0))
    return Status(ErrorCode::kFieldOutOfRange, field + " has a coded prolog with no bytes");
  if (CKZ_RULE_ON(F10) && out->prolog_codec == PrologCodec::kZstdParent && !has_link)
    return Status(ErrorCode::kBadLink,
                  field + ".prolog_codec is ZstdParent (2) but the file is not a link");
  if (f->prolog()) out->prolog_coded.assign(f->prolog()->begin(), f->prolog()->end());
  out->prolog_length = f->prolog_raw_length();
  out->prolog_crc32c = f->prolog_crc32c();
  out->prolog_parent_file = f->prolog_parent_file();
  return Status::Ok();
}

Status ParseSourceFile(const fb::SourceFile* f, size_t index, size_t tensor_count, bool has_link,
                       const Limits& limits, std::vector<int>* tensor_file,
                       SourceFileInfo* out) {
  const std::string field = "files[" + std::to_string(index) + "]";
  if (CKZ_RULE_ON(F1))
    CKZ_RETURN_IF_ERROR(CheckRelativePath(f->path()->string_view(), field + ".path"));
  out->path = f->path()->str();
  const auto format = static_cast<uint8_t>(f->format());
  if (CKZ_RULE_ON(F2) && format > kMaxSourceFormat)
    return OutOfRange(field + ".format", format, "the formats 0..2");
  out->format = static_cast<SourceFormat>(format);
  CKZ_RETURN_IF_ERROR(ParsePrologCoding(f, field, has_link, limits, out));
  if (f->tensors()) {
    if (CKZ_RULE_ON(F3) && out->format == SourceFormat::kRaw && f->tensors()->size() > 0)
      return Status(ErrorCode::kFieldOutOfRange,
                    field + " " + Quote(out->path) + " is a raw file but lists tensors");
    for (uint32_t t : *f->tensors()) {
      if (t >= tensor_count)
        return OutOfRange(field + ".tensors[]", t,
                          "the " + std::to_string(tensor_count) + " tensors of the file");
      if (CKZ_RULE_ON(F4) && (*tensor_file)[t] != -1)
        return Status(ErrorCode::kFieldOutOfRange,
                      field + " lists tensor " + std::to_string(t) +
                          " already listed by files[" + std::to_string((*tensor_file)[t]) + "]");
      (*tensor_file)[t] = int(index);
      out->tensors.push_back(t);
    }
  }
  // Rule F5, then F6 patch by patch, each patch's `reserved` first.
  const std::string named = field + " " + Quote(out->path);
  if (f->splits()) out->splits.assign(f->splits()->begin(), f->splits()->end());
  if (CKZ_RULE_ON(F5))
    CKZ_RETURN_IF_ERROR(CheckSplits(out->PrologLength(), out->tensors.size(), out->splits, named));
  if (const auto* patches = f->crc32_patches()) {
    for (uint32_t i = 0; i < patches->size(); ++i) {
      const fb::Crc32Patch* p = patches->Get(i);
      if (CKZ_RULE_ON(F6) && p->reserved() != 0)
        return Status(ErrorCode::kNonzeroPadding, field + ".crc32_patches[" + std::to_string(i) +
                                                      "].reserved is not 0");
      out->crc32_patches.push_back({p->prolog_offset(), p->tensor()});
      if (CKZ_RULE_ON(F6))
        CKZ_RETURN_IF_ERROR(CheckCrc32Patch(out->PrologLength(), out->tensors.size(),
                                            out->crc32_patches, i, named));
    }
  }
  return Status::Ok();
}

// Regions checked between two calls of Limits::read_below.
constexpr size_t kRegionsPerReadBelow = 64;

// Every byte of the file belongs to the preamble, the header or one chunk, or is zero padding
// that brings the next region to its 64-byte boundary.
Status CheckLayout(const Archive& a, const Limits& limits) {
  struct Region {
    uint64_t offset, length;
    int64_t tensor;  // -1 preamble, -2 header
    size_t chunk;
  };
  std::vector<Region> regions;
  regions.push_back({0, kPreambleSize, -1, 0});
  regions.push_back({a.preamble.header_offset, a.preamble.header_length, -2, 0});
  for (size_t t = 0; t < a.tensors.size(); ++t)
    for (size_t c = 0; c < a.tensors[t].chunks.size(); ++c)
      regions.push_back({a.tensors[t].chunks[c].offset, a.tensors[t].chunks[c].stored_length,
                         int64_t(t), c});
  std::sort(regions.begin(), regions.end(), [](const Region& x, const Region& y) {
    return x.offset != y.offset ? x.offset < y.offset : x.length < y.length;
  });
  auto name = [&](const Region& r) -> std::string {
    if (r.tensor == -1) return "the preamble";
    if (r.tensor == -2) return "the header";
    return "tensors[" + std::to_string(r.tensor) + "].chunks[" + std::to_string(r.chunk) + "]";
  };
  for (size_t i = 1; i < regions.size(); ++i) {
    const Region& prev = regions[i - 1];
    const Region& cur = regions[i];
    const uint64_t prev_end = prev.offset + prev.length;  // in-file, cannot overflow
    if (cur.offset < prev_end)
      return Status(ErrorCode::kRangeOverlap, name(cur) + " at offset " +
                                                  std::to_string(cur.offset) + " overlaps " +
                                                  name(prev) + " ending at " +
                                                  std::to_string(prev_end));
    uint64_t expected = prev_end;
    AlignUp(prev_end, kAlignment, &expected);  // cannot overflow: prev_end <= file size
    if (CKZ_RULE_ON(L2) && cur.offset != expected)
      return Status(ErrorCode::kUnexplainedBytes,
                    "bytes [" + std::to_string(prev_end) + ", " + std::to_string(cur.offset) +
                        ") between " + name(prev) + " and " + name(cur) +
                        " belong to no structure");
    for (uint64_t p = prev_end; p < cur.offset; ++p)
      if (CKZ_RULE_ON(L3) && a.file.data[p] != 0)
        return Status(ErrorCode::kNonzeroPadding,
                      "padding byte at offset " + std::to_string(p) + " is not zero");
    if (limits.read_below && i % kRegionsPerReadBelow == 0) limits.read_below(cur.offset);
  }
  const Region& last = regions.back();
  const uint64_t end = last.offset + last.length;
  if (CKZ_RULE_ON(L4) && end != a.file.size)
    return Status(ErrorCode::kUnexplainedBytes,
                  "bytes [" + std::to_string(end) + ", " + std::to_string(a.file.size) +
                      ") after " + name(last) + " belong to no structure");
  return Status::Ok();
}

}  // namespace

namespace {

constexpr uint64_t kMaxCodedHeaderWindow = uint64_t{1} << 27;  // spec 4.1, as for chunks (7.2)

// Rule H8 (spec 4.1): a coded header is one zstd frame that declares its content size, at most
// the reader's header limit, and decodes to exactly that many bytes (the FlatBuffers buffer,
// into `*out`, 8-aligned).
Status DecodeCodedHeader(ByteSpan stored, uint64_t offset, const Limits& limits,
                         std::vector<uint64_t>* out, uint64_t* size) {
  const std::string where = "header at offset " + std::to_string(offset);
  // The declared size first, before anything after the frame header (spec 4.1).
  const std::optional<uint64_t> declared = ZstdDeclaredSize(stored);
  if (!declared)
    return Status(ErrorCode::kHeaderMalformed,
                  where + " is coded (required feature bit 5) but does not start with a zstd "
                          "frame header that declares its content size");
  const uint64_t n = *declared;
  if (CKZ_RULE_ON(H8) && n > limits.max_header_bytes)
    return Status(ErrorCode::kHeaderTooLarge,
                  where + " decodes to " + std::to_string(n) + " bytes, above this reader's "
                          "limit of " + std::to_string(limits.max_header_bytes));
  std::vector<uint64_t> decoded(size_t(n) / 8 + 1);
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  const std::string error =
      DecodeZstdFrame(dctx, stored, MutableByteSpan(reinterpret_cast<uint8_t*>(decoded.data()), n),
                      {}, kMaxCodedHeaderWindow);
  ZSTD_freeDCtx(dctx);
  if (!error.empty())
    return Status(ErrorCode::kHeaderMalformed, where + " (zstd-coded): " + error);
  out->swap(decoded);
  *size = n;
  return Status::Ok();
}

// (0.9) Rules LM1-LM3: the LSTM model (spec 7.11.1) or the reference to the parent's.
Status ParseLstm(const fb::Header* h, bool has_link, uint64_t required_features, Archive* a) {
  const fb::LstmModel* m = h->lstm_model();
  a->lstm_model_from_parent = h->lstm_model_from_parent();
  if (m != nullptr) {
    auto bad = [](const std::string& what) {
      return Status(ErrorCode::kFieldOutOfRange, "lstm_model." + what + " (rule LM1)");
    };
    const uint32_t hidden = m->hidden(), clip = m->clip();
    if (CKZ_RULE_ON(LM1) && (hidden < 8 || hidden > kLstmMaxHidden || hidden % 8 != 0))
      return bad("hidden is " + std::to_string(hidden) + ", not 8, 16, 24 or 32");
    if (CKZ_RULE_ON(LM1) && (clip < 1 || clip > kLstmMaxClip))
      return bad("clip is " + std::to_string(clip) + ", not 1..7");
    if (CKZ_RULE_ON(LM1) && m->recur_shift() > 15)
      return bad("recur_shift is " + std::to_string(m->recur_shift()) + ", not 0..15");
    if (CKZ_RULE_ON(LM1) && (m->out_shift() < 2 || m->out_shift() > 15))
      return bad("out_shift is " + std::to_string(m->out_shift()) + ", not 2..15");
    const size_t want = LstmModel::ParamsBytes(hidden, clip);
    const size_t got = m->params() ? m->params()->size() : 0;
    if (got != want)
      return bad("params has " + std::to_string(got) + " bytes; hidden " +
                 std::to_string(hidden) + " and clip " + std::to_string(clip) + " need " +
                 std::to_string(want));
    auto model = std::make_shared<LstmModel>();
    model->hidden = hidden;
    model->clip = clip;
    model->recur_shift = m->recur_shift();
    model->out_shift = m->out_shift();
    if (!model->SetParams(m->params()->data(), got))  // the length was checked above
      return bad("params of " + std::to_string(got) + " bytes");
    for (size_t i = 0; i < model->mix_init.size(); ++i)
      if (CKZ_RULE_ON(LM1) &&
          (model->mix_init[i] < -kLstmMixLimit || model->mix_init[i] > kLstmMixLimit))
        return bad("params: mix_init[" + std::to_string(i) + "] is " +
                   std::to_string(model->mix_init[i]) + ", outside -2^20..2^20");
    a->lstm_model = std::move(model);
    a->lstm_model_own = true;
  }
  if (a->lstm_model_from_parent && !has_link && CKZ_RULE_ON(LM2))
    return Status(ErrorCode::kBadLink,
                  "lstm_model_from_parent is true in a keyframe (rule LM2)");
  if (a->lstm_model_from_parent && m != nullptr && CKZ_RULE_ON(LM2))
    return Status(ErrorCode::kFieldOutOfRange,
                  "the header has both lstm_model and lstm_model_from_parent (rule LM2)");
  const bool has_model = m != nullptr || a->lstm_model_from_parent;
  if (CKZ_RULE_ON(LM3) && has_model != ((required_features & kFeatureLstm) != 0))
    return Status(ErrorCode::kFieldOutOfRange,
                  has_model ? "the header has an LSTM model but required feature bit 8 (lstm) "
                              "is clear (rule LM3)"
                            : "required feature bit 8 (lstm) is set but the header has no LSTM "
                              "model (rule LM3)");
  // (0.11) lstm-cm chunks code with the file's model: bit 10 only beside bit 8.
  if (CKZ_RULE_ON(LM4) && (required_features & kFeatureLstmIndices) != 0 &&
      (required_features & kFeatureLstm) == 0)
    return Status(ErrorCode::kFieldOutOfRange,
                  "required feature bit 10 (lstm-cm) is set without bit 8 (lstm) (rule LM4)");
  return Status::Ok();
}

}  // namespace

Result<Archive> ParseArchive(ByteSpan file, const Limits& limits) {
  Archive a;
  a.file = file;
  {
    Result<Preamble> p = ParsePreamble(file, file.size);
    if (!p.ok()) return p.status();
    a.preamble = *p;
  }
  const Preamble& p = a.preamble;
  if (p.header_length > limits.max_header_bytes)
    return Status(ErrorCode::kHeaderTooLarge,
                  "header is " + std::to_string(p.header_length) +
                      " bytes, above this reader's limit of " +
                      std::to_string(limits.max_header_bytes));
  // Verify and read a private copy: 8-aligned whatever the caller's buffer, and immune to the
  // file changing under a memory mapping between verification and reading.
  std::vector<uint64_t> aligned_header(p.header_length / 8 + 1);
  std::memcpy(aligned_header.data(), file.data + p.header_offset, p.header_length);
  const uint8_t* hdr = reinterpret_cast<const uint8_t*>(aligned_header.data());
  const uint32_t crc = Crc32c(hdr, p.header_length);
  if (crc != p.header_crc32c)
    return Status(ErrorCode::kHeaderChecksum,
                  "header at offset " + std::to_string(p.header_offset) +
                      ": CRC-32C does not match preamble.header_crc32c");
  a.header_bytes = p.header_length;
  if (p.required_features & kFeatureCodedHeader) {
    CKZ_RETURN_IF_ERROR(DecodeCodedHeader(ByteSpan(hdr, p.header_length), p.header_offset,
                                          limits, &aligned_header, &a.header_bytes));
    hdr = reinterpret_cast<const uint8_t*>(aligned_header.data());
  }
  if (CKZ_RULE_ON(H2) && (a.header_bytes < 8 || !fb::HeaderBufferHasIdentifier(hdr)))
    return Status(ErrorCode::kHeaderMalformed,
                  "header at offset " + std::to_string(p.header_offset) +
                      " lacks the FlatBuffers file identifier \"CKZH\" at its bytes 4..7");
  flatbuffers::Verifier::Options vopts;
  vopts.max_depth = 16;
  vopts.max_tables = kMaxHeaderTables;
  flatbuffers::Verifier verifier(hdr, size_t(a.header_bytes), vopts);
  if (!verifier.VerifyBuffer<fb::Header>(CKZ_RULE_ON(H2) ? fb::HeaderIdentifier() : nullptr))
    return Status(ErrorCode::kHeaderMalformed,
                  "header at offset " + std::to_string(p.header_offset) +
                      " is not a valid FlatBuffers Header table");
  const fb::Header* h = fb::GetHeader(hdr);
  if (CKZ_RULE_ON(H3)) CKZ_RETURN_IF_ERROR(CheckVectorsAligned(h));

  if (CKZ_RULE_ON(H4)) CKZ_RETURN_IF_ERROR(CheckContentId(h->content_id(), "content_id"));
  CopyContentId(h->content_id(), &a.content_id);
  if (h->step().has_value()) a.step = *h->step();
  const bool has_link = h->link() != nullptr;
  if (CKZ_RULE_ON(H5) && has_link != ((p.required_features & kFeatureReferenceChain) != 0))
    return Status(ErrorCode::kBadLink,
                  has_link ? "the header has a link but required feature bit 0 "
                             "(reference chain) is clear"
                           : "required feature bit 0 (reference chain) is set but the header "
                             "has no link");
  if (has_link) {
    LinkInfo link;
    CKZ_RETURN_IF_ERROR(ParseLink(h->link(), &link));
    a.link = std::move(link);
  }
  if (h->writer()) {
    if (CKZ_RULE_ON(H7)) CKZ_RETURN_IF_ERROR(CheckUtf8(h->writer(), "writer"));
    a.writer = h->writer()->str();
  }

  // Vectors grow as their entries validate: a crafted header can list one table millions of
  // times, and sizing from the declared count would allocate before the first check.
  if (const auto* tensors = h->tensors()) {
    for (uint32_t i = 0; i < tensors->size(); ++i) {
      a.tensors.emplace_back();
      CKZ_RETURN_IF_ERROR(
          ParseTensor(tensors->Get(i), i, has_link, limits, file.size, &a.tensors[i]));
      if (!a.index_by_name.emplace(a.tensors[i].name, i).second && CKZ_RULE_ON(T10))
        return Status(ErrorCode::kDuplicateName, "tensors[" + std::to_string(i) + "] name " +
                                                     Quote(a.tensors[i].name) +
                                                     " is used by an earlier tensor");
    }
  }
  CKZ_RETURN_IF_ERROR(CheckOwners(a.tensors));
  CKZ_RETURN_IF_ERROR(CheckStepSources(a.tensors));
  {
    // Rule Q1: required feature bit 1 says whether any tensor is quantized; (0.7) rule Q11:
    // bit 6 whether any has a level kind.
    bool quantized = false, levels = false, key_split = false;
    for (const TensorInfo& t : a.tensors) {
      quantized |= t.quantization.has_value();
      levels |= t.quantization && t.quantization->IsLevels();
      key_split |= t.predictor == Predictor::kKeySplit;
    }
    if (CKZ_RULE_ON(Q1) && quantized != ((p.required_features & kFeatureQuantized) != 0))
      return Status(ErrorCode::kFieldOutOfRange,
                    quantized ? "a tensor is quantized but required feature bit 1 "
                                "(quantized tensors) is clear"
                              : "required feature bit 1 (quantized tensors) is set but no "
                                "tensor is quantized");
    if (CKZ_RULE_ON(Q11) && levels != ((p.required_features & kFeatureLevels) != 0))
      return Status(ErrorCode::kFieldOutOfRange,
                    levels ? "a tensor is quantized with a level kind but required feature bit "
                             "6 (levels) is clear"
                           : "required feature bit 6 (levels) is set but no tensor has a level "
                             "kind");
    // (0.8) Rule T12: bit 7 whether any tensor has the KeySplit predictor.
    if (CKZ_RULE_ON(T12) && key_split != ((p.required_features & kFeatureKeySplit) != 0))
      return Status(ErrorCode::kFieldOutOfRange,
                    key_split ? "a tensor has predictor KeySplit but required feature bit 7 "
                                "(key-split) is clear"
                              : "required feature bit 7 (key-split) is set but no tensor has "
                                "predictor KeySplit");
    // (0.10) Rule Q12: bit 9 (moment contexts) only in a link with level tensors.
    if (CKZ_RULE_ON(Q12) && (p.required_features & kFeatureMomentContext) != 0 &&
        (!has_link || !levels))
      return Status(ErrorCode::kFieldOutOfRange,
                    std::string("required feature bit 9 (moment contexts) is set in ") +
                        (has_link ? "a link without level tensors" : "a keyframe"));
  }

  if (const auto* files = h->files()) {
    std::vector<int> tensor_file(a.tensors.size(), -1);
    std::unordered_set<std::string> paths;
    for (uint32_t i = 0; i < files->size(); ++i) {
      a.files.emplace_back();
      CKZ_RETURN_IF_ERROR(
          ParseSourceFile(files->Get(i), i, a.tensors.size(), has_link, limits, &tensor_file,
                          &a.files[i]));
      if (!paths.insert(a.files[i].path).second && CKZ_RULE_ON(F7))
        return Status(ErrorCode::kDuplicateName, "files[" + std::to_string(i) + "].path " +
                                                     Quote(a.files[i].path) +
                                                     " is used by an earlier file");
    }
    // Decoding rebuilds the files: a tensor in none of them would be silently dropped.
    for (size_t t = 0; t < tensor_file.size(); ++t)
      if (CKZ_RULE_ON(F8) && !a.files.empty() && tensor_file[t] == -1)
        return Status(ErrorCode::kFieldOutOfRange,
                      "tensors[" + std::to_string(t) + "] " + Quote(a.tensors[t].name) +
                          " belongs to none of the source files");
  }

  {
    // Rule F11: required feature bit 3 says whether any prolog is coded.
    bool coded = false;
    for (const SourceFileInfo& f : a.files) coded |= f.prolog_codec != PrologCodec::kStored;
    if (CKZ_RULE_ON(F11) && coded != ((p.required_features & kFeatureCodedProlog) != 0))
      return Status(ErrorCode::kFieldOutOfRange,
                    coded ? "a prolog is coded but required feature bit 3 (coded prologs) is "
                            "clear"
                          : "required feature bit 3 (coded prologs) is set but no prolog is "
                            "coded");
  }

  if (const auto* metadata = h->metadata()) {
    std::unordered_set<std::string> keys;
    for (uint32_t i = 0; i < metadata->size(); ++i) {
      a.metadata.emplace_back();
      CKZ_RETURN_IF_ERROR(ParseMetadata(metadata->Get(i), i, &a.metadata[i]));
      if (!keys.insert(a.metadata[i].key).second && CKZ_RULE_ON(M4))
        return Status(ErrorCode::kDuplicateName, "metadata[" + std::to_string(i) + "].key " +
                                                     Quote(a.metadata[i].key) +
                                                     " is used by an earlier entry");
    }
  }

  CKZ_RETURN_IF_ERROR(ParseLstm(h, has_link, p.required_features, &a));
  CKZ_RETURN_IF_ERROR(CheckLayout(a, limits));
  return a;
}

Status ResolveLstmModel(Archive* link, const Archive& parent) {
  if (!link->lstm_model_from_parent) return Status::Ok();
  if (!parent.lstm_model)
    return Status(ErrorCode::kReferenceMismatch,
                  "lstm_model_from_parent: the parent has no LSTM model (rule R5)");
  link->lstm_model = parent.lstm_model;
  return Status::Ok();
}

std::optional<size_t> Archive::FindTensor(std::string_view name) const {
  auto it = index_by_name.find(std::string(name));
  if (it == index_by_name.end()) return std::nullopt;
  return it->second;
}

const MetaEntry* Archive::FindMetadata(std::string_view key) const {
  for (const MetaEntry& e : metadata)
    if (e.key == key) return &e;
  return nullptr;
}

uint64_t Archive::TotalRawBytes() const {
  uint64_t n = 0;
  for (const TensorInfo& t : tensors) n += t.byte_length;
  return n;
}

uint64_t Archive::TotalStoredBytes() const { return file.size; }

}  // namespace ckz
