#include "common/transforms.h"

#include <cstring>
#include <type_traits>

namespace ckz {
namespace {

// Little-endian element load/store of the unsigned type U.
template <typename U>
inline U LoadElem(const uint8_t* p) {
  U v = 0;
  for (size_t i = 0; i < sizeof(U); ++i) v |= U(U(p[i]) << (8 * i));
  return v;
}
template <typename U>
inline void StoreElem(uint8_t* p, U v) {
  for (size_t i = 0; i < sizeof(U); ++i) p[i] = uint8_t(v >> (8 * i));
}

template <typename U>
inline U Predict(Predictor predictor, U x, U r) {
  switch (predictor) {
    case Predictor::kXorRef:
      return U(x ^ r);
    case Predictor::kSubRef: {
      const U d = U(x - r);
      const U sign = U(0) - U(d >> (8 * sizeof(U) - 1));
      return U(U(d << 1) ^ sign);  // zigzag
    }
    case Predictor::kNone:
      break;
  }
  return x;
}

template <typename U>
inline U Unpredict(Predictor predictor, U z, U r) {
  switch (predictor) {
    case Predictor::kXorRef:
      return U(z ^ r);
    case Predictor::kSubRef: {
      const U d = U(U(z >> 1) ^ (U(0) - U(z & 1)));
      return U(r + d);
    }
    case Predictor::kNone:
      break;
  }
  return z;
}

template <typename U>
void Forward(Predictor predictor, bool planes, const uint8_t* data, const uint8_t* ref, size_t n,
             uint8_t* out) {
  constexpr size_t w = sizeof(U);
  const size_t count = n / w;
  for (size_t i = 0; i < count; ++i) {
    const U x = LoadElem<U>(data + i * w);
    const U r = ref ? LoadElem<U>(ref + i * w) : U(0);
    const U v = Predict<U>(predictor, x, r);
    if (planes) {
      for (size_t b = 0; b < w; ++b) out[b * count + i] = uint8_t(v >> (8 * b));
    } else {
      StoreElem<U>(out + i * w, v);
    }
  }
}

template <typename U>
void Inverse(Predictor predictor, bool planes, const uint8_t* in, const uint8_t* ref, size_t n,
             uint8_t* out) {
  constexpr size_t w = sizeof(U);
  const size_t count = n / w;
  for (size_t i = 0; i < count; ++i) {
    U v;
    if (planes) {
      v = 0;
      for (size_t b = 0; b < w; ++b) v |= U(U(in[b * count + i]) << (8 * b));
    } else {
      v = LoadElem<U>(in + i * w);
    }
    const U r = ref ? LoadElem<U>(ref + i * w) : U(0);
    StoreElem<U>(out + i * w, Unpredict<U>(predictor, v, r));
  }
}

}  // namespace

void ForwardTransform(Predictor predictor, bool byte_planes, size_t width, const uint8_t* data,
                      const uint8_t* ref, size_t n, uint8_t* out) {
  if (predictor == Predictor::kNone) ref = nullptr;
  if (predictor == Predictor::kNone && (!byte_planes || width == 1)) {
    std::memcpy(out, data, n);
    return;
  }
  switch (width) {
    case 1: return Forward<uint8_t>(predictor, byte_planes, data, ref, n, out);
    case 2: return Forward<uint16_t>(predictor, byte_planes, data, ref, n, out);
    case 4: return Forward<uint32_t>(predictor, byte_planes, data, ref, n, out);
    case 8: return Forward<uint64_t>(predictor, byte_planes, data, ref, n, out);
  }
}

void InverseTransform(Predictor predictor, bool byte_planes, size_t width, const uint8_t* in,
                      const uint8_t* ref, size_t n, uint8_t* out) {
  if (predictor == Predictor::kNone) ref = nullptr;
  if (predictor == Predictor::kNone && (!byte_planes || width == 1)) {
    std::memcpy(out, in, n);
    return;
  }
  switch (width) {
    case 1: return Inverse<uint8_t>(predictor, byte_planes, in, ref, n, out);
    case 2: return Inverse<uint16_t>(predictor, byte_planes, in, ref, n, out);
    case 4: return Inverse<uint32_t>(predictor, byte_planes, in, ref, n, out);
    case 8: return Inverse<uint64_t>(predictor, byte_planes, in, ref, n, out);
  }
}

}  // namespace ckz
