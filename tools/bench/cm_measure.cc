// cm_measure: what the cm context model (spec 7.7) gains over ExCP's own packing on the same
// index streams, and what each of its contexts is worth.
//
//   cm_measure CHAIN_DIR [--configs]
//
// CHAIN_DIR holds a chain of .ckz files written by `ckz compress` (ExCP shrinking; any index
// codec). For every link it decodes each quantized tensor's indices, then sizes them as
//   excp+xz  : ExCP's format — indices packed `bits` per element (two 4-bit indices a byte),
//              codebooks as fp16 — all tensors of the checkpoint concatenated, then xz -9
//              (ExCP's baseline archives its output with 7-Zip);
//   file     : the index streams as this file stores them (zstd or packed per chunk);
//   cm       : the cm codec on the same chunks, with the parent's indices and the aux tensor
//              exactly as a decoder would have them; + 4 bytes per centre (our f32 codebooks).
// --configs also sizes cm with single contexts switched off.
#include <cstdio>
#include <filesystem>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "baselines.h"
#include "bench_util.h"
#include "ckz/decoder.h"
#include "ckz/io.h"
#include "common/index_model.h"

namespace {

using namespace ckz;

struct Stream {
  std::vector<uint8_t> indices;
  uint32_t centres = 0;
};

// ExCP's packing: `bits`-bit indices, little end first, two 4-bit indices per byte.
void ExcpPack(const std::vector<uint8_t>& idx, unsigned bits, std::vector<uint8_t>* out) {
  const size_t start = out->size();
  out->resize(start + (idx.size() * bits + 7) / 8, 0);
  uint64_t bit = 0;
  for (uint8_t v : idx) {
    for (unsigned b = 0; b < bits; ++b, ++bit)
      if ((v >> b) & 1) (*out)[start + bit / 8] |= uint8_t(1u << (bit % 8));
  }
}

// Binary16 bits of a binary32 (round to nearest even); finite centres only.
uint16_t ToF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  int32_t e = int32_t((x >> 23) & 0xFF) - 127 + 15;
  uint32_t m = x & 0x7FFFFFu;
  if (e >= 31) return uint16_t(sign | 0x7C00u);
  if (e <= 0) {
    if (e < -10) return uint16_t(sign);
    m |= 0x800000u;
    const unsigned shift = unsigned(14 - e);
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return uint16_t(sign | h);
  }
  uint32_t h = (uint32_t(e) << 10) | (m >> 13);
  const uint32_t rem = m & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
  return uint16_t(sign | h);
}

const char* RoleShort(Role r) {
  return r == Role::kWeight ? "dW" : r == Role::kMoment1 ? "m" : r == Role::kMoment2 ? "v" : "other";
}

struct Totals {
  uint64_t elements = 0, excp_xz = 0, file = 0, packed = 0;
  std::map<std::string, uint64_t> cm;               // by config name
  std::map<std::string, uint64_t> cm_role, packed_role, elements_role;  // default config
  std::map<std::string, uint64_t> excp_xz_role;  // each stream's packing + centres, xz -9 alone
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: cm_measure CHAIN_DIR [--configs]\n");
    return 1;
  }
  const std::string dir = argv[1];
  const bool configs = argc > 2 && std::string(argv[2]) == "--configs";
  std::vector<std::pair<std::string, IndexModelConfig>> cfgs = {{"cm", IndexModelConfig{}}};
  if (configs) {
    IndexModelConfig c;
    c.sig_parent = false; cfgs.push_back({"-sig_parent", c}); c = {};
    c.sig_neighbours = 1; cfgs.push_back({"sig_left_only", c}); c = {};
    c.sig_neighbours = 0; cfgs.push_back({"-sig_neighbours", c}); c = {};
    c.sig_aux = false; cfgs.push_back({"-sig_aux", c}); c = {};
    c.val_parent = false; cfgs.push_back({"-val_parent", c}); c = {};
    c.val_aux = false; cfgs.push_back({"-val_aux", c}); c = {};
    c.val_left = false; cfgs.push_back({"-val_left", c}); c = {};
    c.sig_parent = c.val_parent = false; cfgs.push_back({"-parent", c}); c = {};
    c.sig_parent = c.val_parent = c.sig_aux = c.val_aux = false; c.sig_neighbours = 0;
    c.val_left = false;
    cfgs.push_back({"no_contexts", c});
  }
  std::vector<std::string> files;
  std::string error;
  if (!bench::ListFiles(dir, ".ckz", &files, &error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  Totals total;
  struct EndToEnd {
    std::string file;
    uint64_t raw, excp_xz, ckz;
  };
  std::vector<EndToEnd> ends;
  std::map<std::string, Stream> previous;  // the parent's indices, by tensor name
  ContentId previous_id{};
  std::printf("%-32s %10s %10s %10s %10s %8s\n", "file", "elements", "excp+xz", "file", "cm",
              "gain");
  for (const std::string& name : files) {
    auto reader = ChainReader::Open(name);
    if (!reader.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), reader.status().ToString().c_str());
      return 1;
    }
    const Archive& a = (*reader)->archive();
    std::map<std::string, Stream> current;
    std::vector<std::vector<uint8_t>> idx(a.tensors.size());
    std::vector<CmTensorRole> roles(a.tensors.size());
    std::vector<uint8_t> excp;
    std::map<std::string, std::vector<uint8_t>> excp_role;  // the same, one stream kind each
    // End to end, as ExCP saves a link: its packed indices and fp16 centres, the tensors it
    // does not shrink as they are, and the rest of the checkpoint (the pickle), then xz -9.
    std::vector<uint8_t> excp_whole;
    uint64_t raw_bytes = 0;
    for (const SourceFileInfo& f : a.files) {
      excp_whole.insert(excp_whole.end(), f.prolog.begin(), f.prolog.end());
      raw_bytes += f.prolog.size();
    }
    uint64_t file_bytes = 0, elements = 0;
    for (size_t t = 0; t < a.tensors.size(); ++t) {
      const TensorInfo& info = a.tensors[t];
      roles[t] = {info.role, info.owner, info.quantization.has_value()};
      raw_bytes += info.byte_length;
      if (!info.quantization) {
        std::vector<uint8_t> bytes(info.byte_length);
        Status s = (*reader)->ReadTensor(t, 0, MutableByteSpan(bytes));
        if (!s.ok()) {
          std::fprintf(stderr, "%s: %s\n", name.c_str(), s.ToString().c_str());
          return 1;
        }
        excp_whole.insert(excp_whole.end(), bytes.begin(), bytes.end());
        continue;
      }
      idx[t].resize(info.num_elements);
      Status s = DecodeIndexRange(a, t, 0, MutableByteSpan(idx[t]), (*reader)->parent());
      if (!s.ok()) {
        std::fprintf(stderr, "%s: %s\n", name.c_str(), s.ToString().c_str());
        return 1;
      }
      const size_t start = excp.size();
      ExcpPack(idx[t], info.quantization->bits, &excp);
      for (float c : info.quantization->codebook) {
        const uint16_t h = ToF16(c);
        excp.push_back(uint8_t(h));
        excp.push_back(uint8_t(h >> 8));
      }
      std::vector<uint8_t>& role_bytes = excp_role[RoleShort(info.role)];
      role_bytes.insert(role_bytes.end(), excp.begin() + long(start), excp.end());
      for (const ChunkInfo& c : info.chunks) file_bytes += c.stored_length - 5;
      file_bytes += 4 * info.quantization->codebook.size();
      elements += info.num_elements;
      current[info.name] = {idx[t], uint32_t(info.quantization->codebook.size())};
    }
    if (elements == 0) {
      previous = std::move(current);
      previous_id = a.content_id;
      continue;
    }
    const bool parent_known = a.link && a.link->parent_content_id == previous_id;
    excp_whole.insert(excp_whole.end(), excp.begin(), excp.end());
    std::vector<uint8_t> xz, xz_whole;
    if (!bench::XzCompress(ByteSpan(excp), 9, &xz, &error) ||
        !bench::XzCompress(ByteSpan(excp_whole), 9, &xz_whole, &error)) {
      std::fprintf(stderr, "xz: %s\n", error.c_str());
      return 1;
    }
    for (const auto& [role, bytes] : excp_role) {
      std::vector<uint8_t> role_xz;
      if (!bench::XzCompress(ByteSpan(bytes), 9, &role_xz, &error)) {
        std::fprintf(stderr, "xz: %s\n", error.c_str());
        return 1;
      }
      total.excp_xz_role[role] += role_xz.size();
    }
    std::map<std::string, uint64_t> cm_sizes;
    for (const auto& [cfg_name, cfg] : cfgs) {
      uint64_t bytes = 0;
      for (size_t t = 0; t < a.tensors.size(); ++t) {
        const TensorInfo& info = a.tensors[t];
        if (!info.quantization) continue;
        const uint64_t w = DTypeSize(info.dtype);
        const int aux = CmAuxTensor(roles, t);
        auto p = parent_known ? previous.find(info.name) : previous.end();
        uint64_t tensor_bytes = 4 * info.quantization->codebook.size();
        for (const ChunkInfo& c : info.chunks) {
          IndexModelInputs in;
          in.centres = uint32_t(info.quantization->codebook.size());
          in.first = c.raw_offset / w;
          in.row = info.shape.size() >= 2 ? info.shape.back() : 0;
          if (p != previous.end() && p->second.indices.size() == info.num_elements) {
            in.parent = p->second.indices.data() + in.first;
            in.parent_centres = p->second.centres;
          }
          if (aux >= 0) {
            in.aux = idx[size_t(aux)].data() + in.first;
            in.aux_centres = uint32_t(a.tensors[size_t(aux)].quantization->codebook.size());
          }
          std::vector<uint8_t> out;
          EncodeIndexStream(in, idx[t].data() + in.first, c.raw_length / w, &out, cfg);
          tensor_bytes += out.size();
        }
        bytes += tensor_bytes;
        if (cfg_name == "cm") {
          std::vector<uint8_t> packed;
          ExcpPack(idx[t], info.quantization->bits, &packed);
          total.cm_role[RoleShort(info.role)] += tensor_bytes;
          total.packed_role[RoleShort(info.role)] += packed.size() + 2 * info.quantization->codebook.size();
          total.elements_role[RoleShort(info.role)] += info.num_elements;
        }
      }
      cm_sizes[cfg_name] = bytes;
      total.cm[cfg_name] += bytes;
    }
    std::error_code ec;
    const uint64_t ckz_bytes = std::filesystem::file_size(name, ec);
    ends.push_back({name, raw_bytes, xz_whole.size(), ckz_bytes});
    total.elements += elements;
    total.excp_xz += xz.size();
    total.file += file_bytes;
    total.packed += excp.size();
    std::printf("%-32s %10llu %10zu %10llu %10llu %7.3fx\n", name.c_str(),
                (unsigned long long)elements, xz.size(), (unsigned long long)file_bytes,
                (unsigned long long)cm_sizes["cm"], double(xz.size()) / double(cm_sizes["cm"]));
    previous = std::move(current);
    previous_id = a.content_id;
  }
  std::printf("\ntotal: %llu elements; ExCP packed %llu, ExCP packed + xz -9 %llu, file (zstd/packed) %llu\n",
              (unsigned long long)total.elements, (unsigned long long)total.packed,
              (unsigned long long)total.excp_xz, (unsigned long long)total.file);
  for (const auto& [n, b] : total.cm)
    std::printf("  %-16s %10llu bytes  %.3f bits/element  %.3fx smaller than ExCP+xz\n", n.c_str(),
                (unsigned long long)b, 8.0 * double(b) / double(total.elements),
                double(total.excp_xz) / double(b));
  std::printf("\nend to end, per link: the restored checkpoint (raw) against ExCP's whole link "
              "(packed indices + fp16 centres + unshrunk tensors + pickle, xz -9) and the .ckz "
              "file\n");
  std::printf("%-32s %12s %12s %12s %9s %9s\n", "file", "raw", "ExCP+xz", "ckz", "ExCP x",
              "ckz x");
  uint64_t sum_raw = 0, sum_excp = 0, sum_ckz = 0;
  for (const EndToEnd& e : ends) {
    std::printf("%-32s %12llu %12llu %12llu %8.2fx %8.2fx\n", e.file.c_str(),
                (unsigned long long)e.raw, (unsigned long long)e.excp_xz,
                (unsigned long long)e.ckz, double(e.raw) / double(e.excp_xz),
                double(e.raw) / double(e.ckz));
    sum_raw += e.raw;
    sum_excp += e.excp_xz;
    sum_ckz += e.ckz;
  }
  if (!ends.empty())
    std::printf("%-32s %12llu %12llu %12llu %8.2fx %8.2fx\n", "all links",
                (unsigned long long)sum_raw, (unsigned long long)sum_excp,
                (unsigned long long)sum_ckz, double(sum_raw) / double(sum_excp),
                double(sum_raw) / double(sum_ckz));
  std::printf("per stream (cm, default contexts; ExCP packing + xz -9 of each stream kind alone):\n");
  for (const auto& [r, b] : total.cm_role)
    std::printf("  %-5s %10llu elements  cm %10llu bytes (%.3f bits/element)  packed %10llu  "
                "ExCP+xz %10llu  cm %.3fx smaller\n",
                r.c_str(), (unsigned long long)total.elements_role[r], (unsigned long long)b,
                8.0 * double(b) / double(total.elements_role[r]),
                (unsigned long long)total.packed_role[r],
                (unsigned long long)total.excp_xz_role[r],
                double(total.excp_xz_role[r]) / double(b));
  return 0;
}
