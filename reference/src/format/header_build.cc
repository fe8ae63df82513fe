#include "format/header_build.h"

#include "ckz_generated.h"

namespace ckz {
namespace {

flatbuffers::Offset<fb::MetaEntry> BuildMeta(flatbuffers::FlatBufferBuilder& b,
                                             const MetaEntry& e) {
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
  return fb::CreateMetaEntry(b, key, type, value);
}

flatbuffers::Offset<fb::Tensor> BuildTensor(flatbuffers::FlatBufferBuilder& b,
                                            const TensorInfo& t) {
  std::vector<fb::Chunk> chunks;
  chunks.reserve(t.chunks.size());
  for (const ChunkInfo& c : t.chunks)
    chunks.emplace_back(c.offset, c.stored_length, c.raw_length, c.crc32c, 0);
  auto name = b.CreateString(t.name);
  auto shape = b.CreateVector(t.shape);
  auto chunk_vec = b.CreateVectorOfStructs(chunks);
  fb::TensorBuilder tb(b);
  tb.add_name(name);
  tb.add_dtype(static_cast<fb::DType>(t.dtype));
  tb.add_shape(shape);
  tb.add_role(static_cast<fb::Role>(t.role));
  tb.add_owner(t.owner);
  tb.add_predictor(static_cast<fb::Predictor>(t.predictor));
  tb.add_byte_planes(t.byte_planes);
  tb.add_chunks(chunk_vec);
  return tb.Finish();
}

}  // namespace

std::vector<uint8_t> BuildHeader(const Archive& a) {
  flatbuffers::FlatBufferBuilder b(1 << 16);
  std::vector<flatbuffers::Offset<fb::Tensor>> tensors;
  tensors.reserve(a.tensors.size());
  for (const TensorInfo& t : a.tensors) tensors.push_back(BuildTensor(b, t));
  auto tensor_vec = b.CreateVector(tensors);

  std::vector<flatbuffers::Offset<fb::SourceFile>> files;
  for (const SourceFileInfo& f : a.files)
    files.push_back(fb::CreateSourceFile(b, b.CreateString(f.path),
                                         static_cast<fb::SourceFormat>(f.format),
                                         b.CreateVector(f.prolog), b.CreateVector(f.tensors)));
  auto file_vec = b.CreateVector(files);

  std::vector<flatbuffers::Offset<fb::MetaEntry>> meta;
  for (const MetaEntry& e : a.metadata) meta.push_back(BuildMeta(b, e));
  auto meta_vec = b.CreateVector(meta);

  flatbuffers::Offset<fb::Link> link;
  if (a.link) {
    auto parent = b.CreateVector(a.link->parent_content_id.data(), a.link->parent_content_id.size());
    auto hint = a.link->path_hint.empty() ? 0 : b.CreateString(a.link->path_hint);
    fb::LinkBuilder lb(b);
    lb.add_parent_content_id(parent);
    if (a.link->parent_step) lb.add_parent_step(*a.link->parent_step);
    if (!hint.IsNull()) lb.add_path_hint(hint);
    lb.add_depth(a.link->depth);
    link = lb.Finish();
  }
  auto cid = b.CreateVector(a.content_id.data(), a.content_id.size());
  auto writer = b.CreateString(a.writer);
  fb::HeaderBuilder hb(b);
  hb.add_content_id(cid);
  if (a.step) hb.add_step(*a.step);
  if (a.link) hb.add_link(link);
  hb.add_tensors(tensor_vec);
  hb.add_files(file_vec);
  hb.add_metadata(meta_vec);
  hb.add_writer(writer);
  fb::FinishHeaderBuffer(b, hb.Finish());
  return std::vector<uint8_t>(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
}

}  // namespace ckz
