#include "format/header_build.h"

#include <algorithm>

#include "ckz_generated.h"
#include "common/bytes.h"

namespace ckz {
namespace {

// Field ids far above the schema's, standing for fields a future minor version might add.
constexpr int kFutureScalarId = 40;
constexpr int kFutureStringId = 41;

flatbuffers::Offset<fb::MetaEntry> BuildMeta(flatbuffers::FlatBufferBuilder& b,
                                             const MetaEntry& e, int type_override) {
  auto key = b.CreateString(e.key);
  flatbuffers::Offset<void> value;
  fb::MetaValue type = fb::MetaValue::NONE;
  if (const auto* i = std::get_if<int64_t>(&e.value)) {
    value = fb::CreateIntValue(b, *i).Union();
    type = fb::MetaValue::IntValue;
  } else if (const auto* d = std::get_if<double>(&e.value)) {
    // Always write the field: -0.0 equals the default 0.0 and would otherwise be dropped.
    b.ForceDefaults(true);
    value = fb::CreateFloatValue(b, *d).Union();
    b.ForceDefaults(false);
    type = fb::MetaValue::FloatValue;
  } else if (const auto* s = std::get_if<std::string>(&e.value)) {
    value = fb::CreateStringValue(b, b.CreateString(*s)).Union();
    type = fb::MetaValue::StringValue;
  } else if (const auto* v = std::get_if<std::vector<uint8_t>>(&e.value)) {
    value = fb::CreateBytesValue(b, b.CreateVector(*v)).Union();
    type = fb::MetaValue::BytesValue;
  } else {
    value = fb::CreateBoolValue(b, std::get<bool>(e.value)).Union();
    type = fb::MetaValue::BoolValue;
  }
  if (type_override >= 0) type = static_cast<fb::MetaValue>(type_override);
  return fb::CreateMetaEntry(b, key, type, value);
}

std::vector<uint8_t> IdBytes(const ContentId& id, std::optional<size_t> length) {
  std::vector<uint8_t> bytes(id.begin(), id.end());
  bytes.resize(length.value_or(id.size()), 0xEE);
  return bytes;
}

flatbuffers::Offset<fb::Tensor> BuildTensor(flatbuffers::FlatBufferBuilder& b,
                                            const TensorInfo& t, size_t index,
                                            const HeaderDeviations& dev) {
  std::vector<fb::Chunk> chunks;
  chunks.reserve(t.chunks.size());
  for (size_t c = 0; c < t.chunks.size(); ++c) {
    const ChunkInfo& ch = t.chunks[c];
    auto reserved = dev.chunk_reserved.find({index, c});
    chunks.emplace_back(ch.offset, ch.stored_length, ch.raw_length, ch.crc32c,
                        reserved == dev.chunk_reserved.end() ? 0u : reserved->second);
  }
  auto name = b.CreateString(t.name);
  auto shape = b.CreateVector(t.shape);
  auto chunk_vec = b.CreateVectorOfStructs(chunks);
  flatbuffers::Offset<fb::Quantization> quant;
  if (t.quantization) {
    const QuantizationInfo& q = *t.quantization;
    // Level kinds have no codebook: the field stays absent.
    flatbuffers::Offset<flatbuffers::Vector<float>> codebook;
    if (!q.codebook.empty()) codebook = b.CreateVector(q.codebook);
    fb::QuantizationBuilder qb(b);
    qb.add_kind(static_cast<fb::QuantKind>(q.kind));
    qb.add_bits(q.bits);
    if (!q.codebook.empty()) qb.add_codebook(codebook);
    qb.add_prune_k(q.prune_k);
    qb.add_prune_threshold(q.prune_threshold);
    qb.add_reference_scale(q.reference_scale);
    // (0.7) Written only when not the default, so codebook kinds' headers stay as they were.
    qb.add_step(q.step);
    qb.add_step_source(q.step_source);
    qb.add_step_slope(q.step_slope);
    qb.add_step_center(q.step_center);
    qb.add_step_limit(q.step_limit);
    qb.add_log_unit(q.log_unit);
    quant = qb.Finish();
  }
  flatbuffers::Offset<flatbuffers::String> future;
  if (dev.unknown_fields) future = b.CreateString("a field of a future minor version");
  fb::TensorBuilder tb(b);
  tb.add_name(name);
  tb.add_dtype(static_cast<fb::DType>(t.dtype));
  tb.add_shape(shape);
  tb.add_role(static_cast<fb::Role>(t.role));
  tb.add_owner(t.owner);
  tb.add_predictor(static_cast<fb::Predictor>(t.predictor));
  tb.add_byte_planes(t.byte_planes);
  tb.add_chunks(chunk_vec);
  if (t.quantization) tb.add_quantization(quant);
  if (dev.unknown_fields) {
    b.AddElement<uint32_t>(flatbuffers::FieldIndexToOffset(kFutureScalarId), 0xC0FFEE, 0);
    b.AddOffset(flatbuffers::FieldIndexToOffset(kFutureStringId), future);
  }
  return tb.Finish();
}

}  // namespace

std::vector<uint8_t> BuildHeader(const Archive& a, const HeaderDeviations* deviations) {
  static const HeaderDeviations kNone;
  const HeaderDeviations& dev = deviations ? *deviations : kNone;
  flatbuffers::FlatBufferBuilder b(1 << 16);
  std::vector<flatbuffers::Offset<fb::Tensor>> tensors;
  tensors.reserve(a.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i)
    tensors.push_back(BuildTensor(b, a.tensors[i], i, dev));
  auto tensor_vec = b.CreateVector(tensors);

  std::vector<flatbuffers::Offset<fb::SourceFile>> files;
  for (size_t fi = 0; fi < a.files.size(); ++fi) {
    const SourceFileInfo& f = a.files[fi];
    // Splits that only say "all of the prolog first" are the default: leave them out.
    const bool plain = std::all_of(f.splits.begin(), f.splits.end(),
                                   [&](uint64_t s) { return s == f.PrologLength(); });
    std::vector<fb::Crc32Patch> patches;
    for (size_t i = 0; i < f.crc32_patches.size(); ++i) {
      const auto reserved = dev.patch_reserved.find({fi, i});
      patches.emplace_back(f.crc32_patches[i].prolog_offset, f.crc32_patches[i].tensor,
                           reserved == dev.patch_reserved.end() ? 0u : reserved->second);
    }
    auto path = b.CreateString(f.path);
    const bool coded = f.prolog_codec != PrologCodec::kStored;
    auto prolog = b.CreateVector(coded ? f.prolog_coded : f.prolog);
    auto tensors = b.CreateVector(f.tensors);
    auto splits = plain ? 0 : b.CreateVector(f.splits);
    auto patch_vec = patches.empty() ? 0 : b.CreateVectorOfStructs(patches);
    fb::SourceFileBuilder fbld(b);
    fbld.add_path(path);
    fbld.add_format(static_cast<fb::SourceFormat>(f.format));
    fbld.add_prolog(prolog);
    fbld.add_tensors(tensors);
    if (!plain) fbld.add_splits(splits);
    if (!patches.empty()) fbld.add_crc32_patches(patch_vec);
    // Zero values are FlatBuffers defaults and not written: a stored prolog has none of these.
    fbld.add_prolog_codec(static_cast<fb::PrologCodec>(f.prolog_codec));
    fbld.add_prolog_raw_length(f.prolog_length);
    fbld.add_prolog_crc32c(f.prolog_crc32c);
    fbld.add_prolog_parent_file(f.prolog_parent_file);
    files.push_back(fbld.Finish());
  }
  auto file_vec = b.CreateVector(files);

  std::vector<flatbuffers::Offset<fb::MetaEntry>> meta;
  for (size_t i = 0; i < a.metadata.size(); ++i) {
    auto type = dev.meta_type.find(i);
    meta.push_back(BuildMeta(b, a.metadata[i], type == dev.meta_type.end() ? -1 : type->second));
  }
  auto meta_vec = b.CreateVector(meta);

  flatbuffers::Offset<fb::Link> link;
  if (a.link) {
    auto parent = b.CreateVector(IdBytes(a.link->parent_content_id, dev.parent_id_bytes));
    auto hint = a.link->path_hint.empty() ? 0 : b.CreateString(a.link->path_hint);
    fb::LinkBuilder lb(b);
    lb.add_parent_content_id(parent);
    if (a.link->parent_step) lb.add_parent_step(*a.link->parent_step);
    if (!hint.IsNull()) lb.add_path_hint(hint);
    lb.add_depth(a.link->depth);
    link = lb.Finish();
  }
  auto cid = b.CreateVector(IdBytes(a.content_id, dev.content_id_bytes));
  auto writer = b.CreateString(a.writer);
  flatbuffers::Offset<flatbuffers::String> future;
  if (dev.unknown_fields) future = b.CreateString("another field of a future minor version");
  flatbuffers::Offset<fb::LstmModel> lstm;
  if (a.lstm_model && a.lstm_model_own) {  // (0.9) spec 7.11.1
    const LstmModel& m = *a.lstm_model;
    std::vector<uint8_t> blob = m.Params();
    if (dev.lstm_params_delta != 0) blob.resize(size_t(int64_t(blob.size()) + dev.lstm_params_delta));
    auto params = b.CreateVector(blob);
    fb::LstmModelBuilder lb(b);
    lb.add_hidden(uint8_t(m.hidden));
    lb.add_clip(uint8_t(m.clip));
    lb.add_recur_shift(uint8_t(m.recur_shift));
    lb.add_out_shift(uint8_t(m.out_shift));
    lb.add_params(params);
    lstm = lb.Finish();
  }
  fb::HeaderBuilder hb(b);
  hb.add_content_id(cid);
  if (a.step) hb.add_step(*a.step);
  if (a.link) hb.add_link(link);
  hb.add_tensors(tensor_vec);
  hb.add_files(file_vec);
  hb.add_metadata(meta_vec);
  hb.add_writer(writer);
  if (!lstm.IsNull()) hb.add_lstm_model(lstm);
  if (a.lstm_model_from_parent) hb.add_lstm_model_from_parent(true);
  if (dev.unknown_fields) {
    b.AddElement<uint64_t>(flatbuffers::FieldIndexToOffset(kFutureScalarId), 0x0123456789ABCDEF, 0);
    b.AddOffset(flatbuffers::FieldIndexToOffset(kFutureStringId), future);
  }
  fb::FinishHeaderBuffer(b, hb.Finish());
  std::vector<uint8_t> out(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
  if (dev.misaligned) {
    // Append a copy of the vector (its length at an 8-aligned offset, so its 8-byte-aligned
    // elements start 4 bytes off) and point the table's field at it. The field's place: the
    // table's vtable (at the table minus its soffset) holds, at byte `slot`, the field's offset
    // in the table (0: absent).
    const fb::Header* h = fb::GetHeader(out.data());
    const MisalignedVector& m = *dev.misaligned;
    const void* table_ptr = nullptr;
    const uint8_t* data = nullptr;
    size_t count = 0, element = 0, slot = 0;
    // `size`: the element's size (Vector::Data() is the raw bytes, whatever the element).
    auto take = [&](const void* table, const auto* v, size_t size, size_t vt) {
      table_ptr = table;
      if (v == nullptr) return;
      data = v->Data();
      count = v->size();
      element = size;
      slot = vt;
    };
    const bool is_tensor = m.field == VectorField::kShape || m.field == VectorField::kChunks;
    if (is_tensor && h->tensors() && m.index < h->tensors()->size()) {
      const fb::Tensor* t = h->tensors()->Get(uint32_t(m.index));
      if (m.field == VectorField::kShape)
        take(t, t->shape(), sizeof(uint64_t), fb::Tensor::VT_SHAPE);
      else
        take(t, t->chunks(), sizeof(fb::Chunk), fb::Tensor::VT_CHUNKS);
    } else if (!is_tensor && h->files() && m.index < h->files()->size()) {
      const fb::SourceFile* f = h->files()->Get(uint32_t(m.index));
      if (m.field == VectorField::kSplits)
        take(f, f->splits(), sizeof(uint64_t), fb::SourceFile::VT_SPLITS);
      else
        take(f, f->crc32_patches(), sizeof(fb::Crc32Patch), fb::SourceFile::VT_CRC32_PATCHES);
    }
    if (data == nullptr || count == 0) return out;  // nothing to misalign
    const std::vector<uint8_t> elements(data, data + count * element);
    const size_t table = size_t(reinterpret_cast<const uint8_t*>(table_ptr) - out.data());
    const size_t vtable = size_t(int64_t(table) - int32_t(LoadLE32(out.data() + table)));
    const size_t field = table + LoadLE16(out.data() + vtable + slot);
    out.resize((out.size() + 7) / 8 * 8, 0);
    const size_t at = out.size();
    out.resize(at + 4);
    StoreLE32(out.data() + at, uint32_t(count));
    out.insert(out.end(), elements.begin(), elements.end());
    out.resize((out.size() + 7) / 8 * 8, 0);
    StoreLE32(out.data() + field, uint32_t(at - field));
  }
  return out;
}

}  // namespace ckz
