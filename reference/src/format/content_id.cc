// Content id (spec section 6).
#include "ckz/content_id.h"

#include <algorithm>
#include <cstring>

#include "common/bytes.h"
#include "common/parallel.h"
#include "common/sha256.h"

namespace ckz {
namespace {
constexpr char kDomain[] = "CKZ content id v1";  // 17 bytes, no terminator hashed
}

Digest TensorDigest(ByteSpan bytes, int threads) {
  const size_t blocks = size_t((bytes.size + kDigestBlockBytes - 1) / kDigestBlockBytes);
  std::vector<Digest> leaves(blocks);
  ParallelFor(blocks, threads, [&](size_t i, int) {
    const size_t begin = i * kDigestBlockBytes;
    const size_t n = std::min<size_t>(kDigestBlockBytes, bytes.size - begin);
    leaves[i] = Sha256::Hash(bytes.data + begin, n);
  });
  Sha256 root;
  for (const Digest& d : leaves) root.Update(d.data(), d.size());
  return root.Finish();
}

struct TensorDigester::State {
  Sha256 root;
  Sha256 leaf;
  uint64_t in_leaf = 0;
};

TensorDigester::TensorDigester() : state_(new State) {}
TensorDigester::~TensorDigester() = default;
TensorDigester::TensorDigester(TensorDigester&&) noexcept = default;
TensorDigester& TensorDigester::operator=(TensorDigester&&) noexcept = default;

void TensorDigester::Update(ByteSpan bytes) {
  State& s = *state_;
  size_t pos = 0;
  while (pos < bytes.size) {
    const size_t take = size_t(std::min<uint64_t>(kDigestBlockBytes - s.in_leaf, bytes.size - pos));
    s.leaf.Update(bytes.data + pos, take);
    s.in_leaf += take;
    pos += take;
    if (s.in_leaf == kDigestBlockBytes) {
      const Digest d = s.leaf.Finish();
      s.root.Update(d.data(), d.size());
      s.leaf = Sha256();
      s.in_leaf = 0;
    }
  }
}

Digest TensorDigester::Finish() {
  State& s = *state_;
  if (s.in_leaf > 0) {
    const Digest d = s.leaf.Finish();
    s.root.Update(d.data(), d.size());
  }
  return s.root.Finish();
}

void ContentIdBuilder::AddTensor(std::string name, DType dtype, std::vector<uint64_t> shape,
                                 const Digest& digest) {
  entries_.push_back({std::move(name), dtype, std::move(shape), digest});
}

ContentId ContentIdBuilder::Finish() const {
  std::vector<const Entry*> sorted;
  sorted.reserve(entries_.size());
  for (const Entry& e : entries_) sorted.push_back(&e);
  // std::string compares as unsigned bytes via char_traits<char>::compare (memcmp).
  std::sort(sorted.begin(), sorted.end(),
            [](const Entry* a, const Entry* b) { return a->name < b->name; });
  Sha256 h;
  uint8_t u64[8];
  auto put64 = [&](uint64_t v) {
    StoreLE64(u64, v);
    h.Update(u64, 8);
  };
  h.Update(reinterpret_cast<const uint8_t*>(kDomain), sizeof kDomain - 1);
  put64(sorted.size());
  for (const Entry* e : sorted) {
    put64(e->name.size());
    h.Update(reinterpret_cast<const uint8_t*>(e->name.data()), e->name.size());
    const uint8_t dtype = uint8_t(e->dtype);
    h.Update(&dtype, 1);
    put64(e->shape.size());
    for (uint64_t d : e->shape) put64(d);
    h.Update(e->digest.data(), e->digest.size());
  }
  return h.Finish();
}

}  // namespace ckz
