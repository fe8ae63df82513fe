// The `ckzinfo` report: what a file holds and how it is coded. Reads the header and the chunk
// stream directories only; decodes nothing and needs no parent.
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "ckz/decoder.h"
#include "ckz/json.h"
#include "cli.h"

namespace ckz::cli {
namespace {

std::string ShapeText(const std::vector<uint64_t>& shape) {
  if (shape.empty()) return "scalar";
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s;
}

std::string ShapeJson(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string FeaturesText(uint64_t bits) {
  if (bits == 0) return "none";
  std::string s;
  for (int b = 0; b < 64; ++b) {
    if (!(bits >> b & 1)) continue;
    if (!s.empty()) s += ", ";
    const uint64_t bit = uint64_t{1} << b;
    s += bit == kFeatureReferenceChain ? "reference-chain"
         : bit == kFeatureQuantized    ? "quantized (lossy)"
         : bit == kFeatureContextModel ? "context-model coding (cm)"
         : bit == kFeatureCodedProlog  ? "coded prologs"
         : bit == kFeatureFloatModel   ? "context-model float coding (cmf)"
         : bit == kFeatureCodedHeader  ? "coded header"
         : bit == kFeatureLevels       ? "levels (cml)"
         : bit == kFeatureKeySplit     ? "key-split (16-bit floats)"
         : bit == kFeatureLstm         ? "LSTM model (lstm)"
         : bit == kFeatureMomentContext ? "moment contexts (weights read the parent's m)"
         : bit == kFeatureLstmIndices   ? "LSTM-mixed indices (lstm-cm)"
                                        : "bit " + std::to_string(b);
  }
  return s;
}

std::string MetaText(const MetaValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) {
    std::ostringstream o;
    o << *d;
    return o.str();
  }
  if (const auto* s = std::get_if<std::string>(&v)) return JsonQuote(*s);
  if (const auto* b = std::get_if<std::vector<uint8_t>>(&v))
    return "<" + std::to_string(b->size()) + " bytes>";
  return std::get<bool>(v) ? "true" : "false";
}

// "alpha=5e-05 beta=2 bits=4" from the excp.* metadata a lossy writer records.
std::string ExcpText(const Archive& a) {
  std::string s;
  for (const char* key : {"excp.alpha", "excp.beta", "excp.bits", "excp.fallback_k"})
    if (const MetaEntry* e = a.FindMetadata(key))
      s += (s.empty() ? "" : " ") + std::string(key + 5) + "=" + MetaText(e->value);
  if (a.FindMetadata("excp.k_at_cap")) s += " k=2.5 (at cap)";
  if (const MetaEntry* e = a.FindMetadata("excp.v_residual"))
    s += MetaText(e->value) == "true" ? " v=residual" : " v=direct";
  // Since 0.6's writers record fallback_k only when asked for one.
  if (a.FindMetadata("excp.alpha") && !a.FindMetadata("excp.fallback_k"))
    s += "; weights without Adam's v lossless";
  return s.empty() ? "parameters not recorded" : s;
}

// "strength=1 steps=2,1,2 rdoq=0.15" from the rd.* metadata the rate-distortion writer records.
std::string RdText(const Archive& a) {
  std::string s;
  auto value = [&](const char* key) {
    const MetaEntry* e = a.FindMetadata(key);
    return e ? MetaText(e->value) : std::string("?");
  };
  s = "strength=" + value("rd.strength") + " steps=" + value("rd.weight_step") + "," +
      value("rd.moment1_step") + "," + value("rd.moment2_step") + " rdoq=" +
      value("rd.rdoq_lambda");
  if (a.FindMetadata("rd.weights_only_step"))
    s += " weights-only step=" + value("rd.weights_only_step") + " x RMS";
  else
    s += "; weights without Adam's v lossless";
  return s;
}

// Reading a chunk's stream directory maps the pages around it (the kernel's fault-around), about
// 64 KiB per chunk: on a file of gigabytes that was 6 % of the file resident by the end. Given
// the file's mapping, the pages of every 64 chunks read are given back.
void ReleaseChunkPages(const Archive& a, size_t t, size_t c, const MappedFile* pages) {
  const std::vector<ChunkInfo>& chunks = a.tensors[t].chunks;
  if (pages == nullptr || (c % 64 != 63 && c + 1 != chunks.size())) return;
  const ChunkInfo& first = chunks[c - c % 64];
  pages->ReleasePages(first.offset, chunks[c].offset + chunks[c].stored_length);
}

// Stream codecs used over all chunks of a tensor: {"zstd": 3, "stored": 1}.
Result<std::map<std::string, uint64_t>> CodecCounts(const Archive& a, size_t t,
                                                    const MappedFile* pages) {
  std::map<std::string, uint64_t> counts;
  for (size_t c = 0; c < a.tensors[t].chunks.size(); ++c) {
    auto dir = ReadStreamDirectory(a, t, c);
    ReleaseChunkPages(a, t, c, pages);
    if (!dir.ok()) return dir.status();
    for (const StreamInfo& s : *dir) ++counts[StreamCodecName(s.codec)];
  }
  return counts;
}

// (0.9) Chunks coded with the LSTM model (codec 6, levels; 0.11, codec 7, indices), by role:
// {"weight": 4, ...}.
std::map<std::string, uint64_t> LstmChunksByRole(const Archive& a, const MappedFile* pages) {
  std::map<std::string, uint64_t> by_role;
  if (!(a.preamble.required_features & kFeatureLstm)) return by_role;
  for (size_t t = 0; t < a.tensors.size(); ++t) {
    if (!a.tensors[t].quantization) continue;
    auto counts = CodecCounts(a, t, pages);
    if (!counts.ok()) continue;  // the tensor table reports it
    for (StreamCodec c : {StreamCodec::kLstmLevels, StreamCodec::kLstmIndices}) {
      const auto it = counts->find(StreamCodecName(c));
      if (it != counts->end()) by_role[RoleName(a.tensors[t].role)] += it->second;
    }
  }
  return by_role;
}

// "own: H 8, clip 3, shifts 12/9, 3,936 bytes; chunks: weight 4, moment1 6" (spec 7.11).
std::string LstmText(const Archive& a, const MappedFile* pages) {
  std::string s;
  if (a.lstm_model_own && a.lstm_model) {
    const LstmModel& m = *a.lstm_model;
    s = "own: H " + std::to_string(m.hidden) + ", clip " + std::to_string(m.clip) +
        ", shifts " + std::to_string(m.recur_shift) + "/" + std::to_string(m.out_shift) + ", " +
        WithCommas(m.StoredBytes()) + " bytes";
  } else if (a.lstm_model_from_parent) {
    s = "the parent's (lstm_model_from_parent)";
  } else {
    return s;
  }
  std::string chunks;
  for (const auto& [role, n] : LstmChunksByRole(a, pages))
    chunks += (chunks.empty() ? "" : ", ") + role + " " + std::to_string(n);
  return s + "; chunks coded with it: " + (chunks.empty() ? "none" : chunks);
}

std::string CodingText(const TensorInfo& t, const std::map<std::string, uint64_t>& counts) {
  std::string s;
  if (t.quantization && t.quantization->IsLevels()) {
    // "levels residual step=0.00012", "levels direct step=3.1e-05 x2^(e(v)/2)", "levels log 1/4"
    const QuantizationInfo& q = *t.quantization;
    char buf[128];
    const char* kind = q.kind == QuantKind::kLevelResidual ? "residual"
                       : q.kind == QuantKind::kLevelDirect ? "direct"
                                                           : "log";
    if (q.kind == QuantKind::kLevelLog)
      snprintf(buf, sizeof buf, "levels log 2^%d", -int(q.log_unit));
    else
      snprintf(buf, sizeof buf, "levels %s step=%.3g%s", kind, double(q.step),
               q.step_source >= 0 ? (q.step_slope > 0 ? "*sqrt" : "/sqrt") : "");
    s = buf;
    if (q.reference_scale != 1.0f) {
      snprintf(buf, sizeof buf, " scale=%.3g", double(q.reference_scale));
      s += buf;
    }
  } else if (t.quantization) {
    const QuantizationInfo& q = *t.quantization;
    char buf[96];
    snprintf(buf, sizeof buf, "excp %s %ub/%zuc", QuantKindName(q.kind), unsigned(q.bits),
             q.codebook.size());
    s = buf;
    if (!std::isnan(q.prune_k)) {
      snprintf(buf, sizeof buf, " k=%.3g", double(q.prune_k));
      s += buf;
    }
    if (q.reference_scale != 1.0f) {
      snprintf(buf, sizeof buf, " scale=%.3g", double(q.reference_scale));
      s += buf;
    }
  } else {
    s = t.predictor == Predictor::kNone ? "" : std::string(PredictorName(t.predictor));
    // KeySplit's ten streams are neither planes nor the element bytes (spec 7.10).
    if (t.predictor != Predictor::kKeySplit)
      s += std::string(s.empty() ? "" : " ") + (t.byte_planes ? "planes" : "bytes");
  }
  for (const auto& [codec, n] : counts) s += " " + codec + "x" + std::to_string(n);
  return s;
}

void PrintText(const std::string& path, const CkzFile& file, const InfoOptions& options) {
  const Archive& a = file.archive;
  const MappedFile* pages = &file.mapping;
  printf("file        %s (%s bytes)\n", path.c_str(), WithCommas(a.file.size).c_str());
  printf("format      CKZ %u.%u; required features: %s; optional: %s\n", a.preamble.major,
         a.preamble.minor, FeaturesText(a.preamble.required_features).c_str(),
         FeaturesText(a.preamble.optional_features).c_str());
  printf("content id  %s\n", ContentIdHex(a.content_id).c_str());
  if (a.step) printf("step        %lld\n", static_cast<long long>(*a.step));
  if (a.link) {
    printf("link        depth %u; parent %s", a.link->depth,
           ContentIdHex(a.link->parent_content_id).c_str());
    if (a.link->parent_step) printf(", step %lld", static_cast<long long>(*a.link->parent_step));
    if (!a.link->path_hint.empty()) printf(", written as '%s'", a.link->path_hint.c_str());
    printf("\n");
  } else {
    printf("link        none (keyframe: decodes on its own)\n");
  }
  if (!a.writer.empty()) printf("writer      %s\n", a.writer.c_str());
  if (a.preamble.required_features & kFeatureCodedHeader)
    printf("header      %s bytes, zstd-coded in %s\n", WithCommas(a.header_bytes).c_str(),
           WithCommas(a.preamble.header_length).c_str());
  else
    printf("header      %s bytes\n", WithCommas(a.header_bytes).c_str());
  if (a.lstm_model_own || a.lstm_model_from_parent)
    printf("lstm model  %s\n", LstmText(a, pages).c_str());
  for (const SourceFileInfo& f : a.files) {
    printf("source      %s (%s, %zu tensors, %llu-byte prolog", f.path.c_str(),
           SourceFormatName(f.format), f.tensors.size(),
           static_cast<unsigned long long>(f.PrologLength()));
    if (f.prolog_codec != PrologCodec::kStored)
      printf(", %s-coded in %zu bytes", PrologCodecName(f.prolog_codec), f.prolog_coded.size());
    if (f.prolog_codec == PrologCodec::kZstdParent)
      printf(" against the parent's files[%u]", f.prolog_parent_file);
    printf(")\n");
  }
  for (const MetaEntry& e : a.metadata)
    printf("metadata    %s = %s\n", e.key.c_str(), MetaText(e.value).c_str());
  uint64_t payload = 0;
  for (const TensorInfo& t : a.tensors) payload += t.stored_length;
  printf("tensors     %zu; %s decoded; %s stored in chunks; file %s (%s)\n", a.tensors.size(),
         HumanBytes(a.TotalRawBytes()).c_str(), HumanBytes(payload).c_str(),
         HumanBytes(a.file.size).c_str(), Ratio(a.TotalRawBytes(), a.file.size).c_str());
  size_t lossy = 0;
  for (const TensorInfo& t : a.tensors) lossy += t.quantization.has_value();
  if (lossy == 0) {
    printf("coding      lossless (every tensor decodes bit-exactly)\n\n");
  } else {
    bool levels = false;
    for (const TensorInfo& t : a.tensors)
      levels = levels || (t.quantization && t.quantization->IsLevels());
    if (a.FindMetadata("rd.strength"))
      printf("coding      LOSSY: %zu of %zu tensors as rate-distortion levels (%s); the others "
             "are bit-exact\n\n",
             lossy, a.tensors.size(), RdText(a).c_str());
    else if (levels)
      printf("coding      LOSSY: %zu of %zu tensors as levels (spec 7.9); the others are "
             "bit-exact\n\n",
             lossy, a.tensors.size());
    else
      printf("coding      LOSSY: %zu of %zu tensors shrunk the ExCP way (%s); the others are "
             "bit-exact\n\n",
             lossy, a.tensors.size(), ExcpText(a).c_str());
  }

  size_t name_width = 4;
  for (const TensorInfo& t : a.tensors) name_width = std::max(name_width, t.name.size());
  name_width = std::min<size_t>(name_width, 48);
  printf("%4s  %-*s  %-5s  %-14s  %-7s  %5s  %-26s  %6s  %12s  %12s  %8s\n", "#",
         int(name_width), "name", "dtype", "shape", "role", "owner", "coding", "chunks",
         "decoded", "stored", "ratio");
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const TensorInfo& t = a.tensors[i];
    const std::string coding = TensorCodingText(a, i, pages);
    printf("%4zu  %-*s  %-5s  %-14s  %-7s  %5s  %-26s  %6zu  %12s  %12s  %8s\n", i,
           int(name_width), t.name.c_str(), DTypeName(t.dtype), ShapeText(t.shape).c_str(),
           RoleName(t.role), t.owner >= 0 ? std::to_string(t.owner).c_str() : "-",
           coding.c_str(), t.chunks.size(), WithCommas(t.byte_length).c_str(),
           WithCommas(t.stored_length).c_str(), Ratio(t.byte_length, t.stored_length).c_str());
    if (!options.chunks) continue;
    for (size_t c = 0; c < t.chunks.size(); ++c) {
      const ChunkInfo& ch = t.chunks[c];
      printf("        chunk %zu: offset %llu, %llu -> %llu bytes, crc32c %08x", c,
             static_cast<unsigned long long>(ch.offset),
             static_cast<unsigned long long>(ch.raw_length),
             static_cast<unsigned long long>(ch.stored_length), ch.crc32c);
      auto dir = ReadStreamDirectory(a, i, c);
      ReleaseChunkPages(a, i, c, pages);
      if (dir.ok())
        for (const StreamInfo& s : *dir)
          printf(" [%s %llu]", StreamCodecName(s.codec),
                 static_cast<unsigned long long>(s.stored_length));
      printf("\n");
    }
  }
}

std::string Json(const std::string& path, const CkzFile& file, const InfoOptions& options) {
  const Archive& a = file.archive;
  const MappedFile* pages = &file.mapping;
  std::string o = "{\n";
  o += "  \"file\": " + JsonQuote(path) + ",\n";
  o += "  \"file_bytes\": " + std::to_string(a.file.size) + ",\n";
  o += "  \"format_version\": [" + std::to_string(a.preamble.major) + ", " +
       std::to_string(a.preamble.minor) + "],\n";
  o += "  \"required_features\": " + std::to_string(a.preamble.required_features) + ",\n";
  o += "  \"optional_features\": " + std::to_string(a.preamble.optional_features) + ",\n";
  o += "  \"content_id\": \"" + ContentIdHex(a.content_id) + "\",\n";
  o += "  \"step\": " + (a.step ? std::to_string(*a.step) : "null") + ",\n";
  bool lossless = true;
  for (const TensorInfo& t : a.tensors) lossless &= !t.quantization;
  o += std::string("  \"lossless\": ") + (lossless ? "true" : "false") + ",\n";
  if (a.link) {
    o += "  \"link\": {\"parent_content_id\": \"" + ContentIdHex(a.link->parent_content_id) +
         "\", \"parent_step\": " +
         (a.link->parent_step ? std::to_string(*a.link->parent_step) : "null") +
         ", \"path_hint\": " + JsonQuote(a.link->path_hint) +
         ", \"depth\": " + std::to_string(a.link->depth) + "},\n";
  } else {
    o += "  \"link\": null,\n";
  }
  o += "  \"writer\": " + JsonQuote(a.writer) + ",\n";
  o += "  \"header_bytes\": " + std::to_string(a.header_bytes) + ",\n";
  o += "  \"header_stored_bytes\": " + std::to_string(a.preamble.header_length) + ",\n";
  o += "  \"decoded_bytes\": " + std::to_string(a.TotalRawBytes()) + ",\n";
  o += "  \"lstm_model\": ";
  if (a.lstm_model_own && a.lstm_model) {
    const LstmModel& m = *a.lstm_model;
    o += "{\"from_parent\": false, \"hidden\": " + std::to_string(m.hidden) +
         ", \"clip\": " + std::to_string(m.clip) + ", \"recur_shift\": " +
         std::to_string(m.recur_shift) + ", \"out_shift\": " + std::to_string(m.out_shift) +
         ", \"bytes\": " + std::to_string(m.StoredBytes());
  } else if (a.lstm_model_from_parent) {
    o += "{\"from_parent\": true";
  }
  if (a.lstm_model_own || a.lstm_model_from_parent) {
    o += ", \"chunks_by_role\": {";
    bool first = true;
    for (const auto& [role, n] : LstmChunksByRole(a, pages)) {
      o += std::string(first ? "" : ", ") + "\"" + role + "\": " + std::to_string(n);
      first = false;
    }
    o += "}}";
  } else {
    o += "null";
  }
  o += ",\n";
  o += "  \"files\": [";
  for (size_t i = 0; i < a.files.size(); ++i) {
    const SourceFileInfo& f = a.files[i];
    o += std::string(i ? ", " : "") + "{\"path\": " + JsonQuote(f.path) + ", \"format\": \"" +
         SourceFormatName(f.format) + "\", \"prolog_bytes\": " + std::to_string(f.PrologLength()) +
         ", \"prolog_codec\": \"" + PrologCodecName(f.prolog_codec) + "\", \"prolog_stored_bytes\": " +
         std::to_string(f.prolog_codec == PrologCodec::kStored ? f.prolog.size()
                                                               : f.prolog_coded.size()) +
         (f.prolog_codec == PrologCodec::kZstdParent
              ? ", \"prolog_parent_file\": " + std::to_string(f.prolog_parent_file)
              : std::string()) +
         ", \"tensors\": " + std::to_string(f.tensors.size()) + "}";
  }
  o += "],\n  \"metadata\": {";
  for (size_t i = 0; i < a.metadata.size(); ++i) {
    const MetaValue& v = a.metadata[i].value;
    std::string value = std::holds_alternative<std::vector<uint8_t>>(v)
                            ? std::to_string(std::get<std::vector<uint8_t>>(v).size())
                            : MetaText(v);
    o += std::string(i ? ", " : "") + JsonQuote(a.metadata[i].key) + ": " + value;
  }
  o += "},\n  \"tensors\": [\n";
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const TensorInfo& t = a.tensors[i];
    o += "    {\"name\": " + JsonQuote(t.name) + ", \"dtype\": \"" + DTypeName(t.dtype) +
         "\", \"shape\": " + ShapeJson(t.shape) + ", \"role\": \"" + RoleName(t.role) +
         "\", \"owner\": " + (t.owner >= 0 ? std::to_string(t.owner) : "null") +
         ", \"predictor\": \"" + PredictorName(t.predictor) +
         "\", \"byte_planes\": " + (t.byte_planes ? "true" : "false") +
         ", \"decoded_bytes\": " + std::to_string(t.byte_length) +
         ", \"stored_bytes\": " + std::to_string(t.stored_length) + ", \"quantization\": ";
    if (t.quantization) {
      const QuantizationInfo& q = *t.quantization;
      o += std::string("{\"kind\": \"") + QuantKindName(q.kind) + "\", \"bits\": " +
           std::to_string(q.bits) + ", \"centres\": " + std::to_string(q.codebook.size()) +
           ", \"prune_k\": " + (std::isnan(q.prune_k) ? "null" : Number(q.prune_k)) +
           ", \"prune_threshold\": " +
           (std::isnan(q.prune_threshold) ? "null" : Number(q.prune_threshold)) +
           ", \"reference_scale\": " + Number(q.reference_scale);
      if (q.IsLevels())
        o += ", \"step\": " + Number(q.step) + ", \"step_source\": " +
             (q.step_source >= 0 ? std::to_string(q.step_source) : "null") +
             ", \"step_slope\": " + std::to_string(q.step_slope) + ", \"step_center\": " +
             std::to_string(q.step_center) + ", \"step_limit\": " +
             std::to_string(q.step_limit) + ", \"log_unit\": " + std::to_string(q.log_unit);
      o += "}";
    } else {
      o += "null";
    }
    o += ", \"streams\": {";
    auto counts = CodecCounts(a, i, pages);
    if (counts.ok()) {
      bool first = true;
      for (const auto& [codec, n] : *counts) {
        o += std::string(first ? "" : ", ") + "\"" + codec + "\": " + std::to_string(n);
        first = false;
      }
    }
    o += "}, \"chunks\": ";
    if (options.chunks) {
      o += "[";
      for (size_t c = 0; c < t.chunks.size(); ++c) {
        const ChunkInfo& ch = t.chunks[c];
        o += std::string(c ? ", " : "") + "{\"offset\": " + std::to_string(ch.offset) +
             ", \"stored_bytes\": " + std::to_string(ch.stored_length) +
             ", \"decoded_bytes\": " + std::to_string(ch.raw_length) +
             ", \"crc32c\": " + std::to_string(ch.crc32c) + "}";
      }
      o += "]";
    } else {
      o += std::to_string(t.chunks.size());
    }
    o += std::string("}") + (i + 1 < a.tensors.size() ? "," : "") + "\n";
  }
  o += "  ]\n}";
  return o;
}

// The same JSON on one line: every line break and the indentation after it removed (strings
// hold no raw line breaks: JsonQuote escapes them).
std::string OneLine(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  for (size_t i = 0; i < json.size(); ++i) {
    if (json[i] != '\n') {
      out += json[i];
      continue;
    }
    while (i + 1 < json.size() && json[i + 1] == ' ') ++i;
  }
  return out;
}

}  // namespace

std::string TensorCodingText(const Archive& a, size_t t, const MappedFile* pages) {
  auto counts = CodecCounts(a, t, pages);
  return counts.ok() ? CodingText(a.tensors[t], *counts) : "damaged chunk";
}

Status PrintInfo(const std::string& path, const InfoOptions& options) {
  auto file = OpenCkzFile(path);
  if (!file.ok()) return file.status();
  if (options.jsonl)
    printf("%s\n", OneLine(Json(path, **file, options)).c_str());
  else if (options.json)
    printf("%s\n", Json(path, **file, options).c_str());
  else
    PrintText(path, **file, options);
  return Status::Ok();
}

int PrintInfoFiles(const std::vector<std::string>& paths, const InfoOptions& options,
                   const char* tool) {
  int code = kExitOk;
  const bool array = options.json && !options.jsonl && paths.size() > 1;
  size_t printed = 0;
  if (array) printf("[\n");
  for (const std::string& path : paths) {
    if (!array) {
      const Status s = PrintInfo(path, options);
      if (!s.ok()) {
        fflush(stdout);
        fprintf(stderr, "%s: %s\n", tool, ErrorText(s).c_str());
        if (code == kExitOk) code = ExitCodeFor(s);
      }
      continue;
    }
    auto file = OpenCkzFile(path);
    if (!file.ok()) {
      fprintf(stderr, "%s: %s\n", tool, ErrorText(file.status()).c_str());
      if (code == kExitOk) code = ExitCodeFor(file.status());
      continue;
    }
    printf("%s%s", printed++ ? ",\n" : "", Json(path, **file, options).c_str());
  }
  if (array) printf("%s]\n", printed ? "\n" : "");
  return code;
}

}  // namespace ckz::cli
