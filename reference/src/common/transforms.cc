#include "common/transforms.h"

#include <cstring>

namespace ckz {
namespace {

// Element loads/stores in little-endian order; a plain copy on little-endian hosts.
template <typename U>
inline U LoadElem(const uint8_t* p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  U v;
  std::memcpy(&v, p, sizeof(U));
  return v;
#else
  U v = 0;
  for (size_t i = 0; i < sizeof(U); ++i) v |= U(U(p[i]) << (8 * i));
  return v;
#endif
}
template <typename U>
inline void StoreElem(uint8_t* p, U v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  std::memcpy(p, &v, sizeof(U));
#else
  for (size_t i = 0; i < sizeof(U); ++i) p[i] = uint8_t(v >> (8 * i));
#endif
}

template <typename U, Predictor P>
inline U Predict(U x, U r) {
  if constexpr (P == Predictor::kXorRef) return U(x ^ r);
  if constexpr (P == Predictor::kSubRef) {
    const U d = U(x - r);
    return U(U(d << 1) ^ U(U(0) - U(d >> (8 * sizeof(U) - 1))));  // zigzag
  }
  return x;
}

template <typename U, Predictor P>
inline U Unpredict(U z, U r) {
  if constexpr (P == Predictor::kXorRef) return U(z ^ r);
  if constexpr (P == Predictor::kSubRef) return U(r + U(U(z >> 1) ^ U(U(0) - U(z & 1))));
  return z;
}

template <typename U, Predictor P, bool kPlanes>
void Forward(const uint8_t* __restrict data, const uint8_t* __restrict ref, size_t n,
             uint8_t* __restrict out) {
  constexpr size_t w = sizeof(U);
  const size_t count = n / w;
  for (size_t i = 0; i < count; ++i) {
    const U r = P == Predictor::kNone ? U(0) : LoadElem<U>(ref + i * w);
    const U v = Predict<U, P>(LoadElem<U>(data + i * w), r);
    if constexpr (kPlanes) {
      for (size_t b = 0; b < w; ++b) out[b * count + i] = uint8_t(v >> (8 * b));
    } else {
      StoreElem<U>(out + i * w, v);
    }
  }
}

template <typename U, Predictor P, bool kPlanes>
void Inverse(const uint8_t* __restrict in, const uint8_t* __restrict ref, size_t n,
             uint8_t* __restrict out) {
  constexpr size_t w = sizeof(U);
  const size_t count = n / w;
  for (size_t i = 0; i < count; ++i) {
    U v;
    if constexpr (kPlanes) {
      v = 0;
      for (size_t b = 0; b < w; ++b) v |= U(U(in[b * count + i]) << (8 * b));
    } else {
      v = LoadElem<U>(in + i * w);
    }
    const U r = P == Predictor::kNone ? U(0) : LoadElem<U>(ref + i * w);
    StoreElem<U>(out + i * w, Unpredict<U, P>(v, r));
  }
}

using Kernel = void (*)(const uint8_t*, const uint8_t*, size_t, uint8_t*);

template <typename U, bool kForward>
Kernel Pick(Predictor p, bool planes) {
#define CKZ_KERNEL(P, PL) (kForward ? &Forward<U, P, PL> : &Inverse<U, P, PL>)
  switch (p) {
    case Predictor::kXorRef:
      return planes ? CKZ_KERNEL(Predictor::kXorRef, true) : CKZ_KERNEL(Predictor::kXorRef, false);
    case Predictor::kSubRef:
      return planes ? CKZ_KERNEL(Predictor::kSubRef, true) : CKZ_KERNEL(Predictor::kSubRef, false);
    case Predictor::kNone:
    case Predictor::kKeySplit:  // not a byte transform: chunk coding routes it to key_split.h
      break;
  }
  return planes ? CKZ_KERNEL(Predictor::kNone, true) : CKZ_KERNEL(Predictor::kNone, false);
#undef CKZ_KERNEL
}

template <bool kForward>
void Run(Predictor predictor, bool byte_planes, size_t width, const uint8_t* in, const uint8_t* ref,
         size_t n, uint8_t* out) {
  if (predictor == Predictor::kNone && (!byte_planes || width == 1)) {
    std::memcpy(out, in, n);
    return;
  }
  Kernel k = nullptr;
  switch (width) {
    case 1: k = Pick<uint8_t, kForward>(predictor, byte_planes); break;
    case 2: k = Pick<uint16_t, kForward>(predictor, byte_planes); break;
    case 4: k = Pick<uint32_t, kForward>(predictor, byte_planes); break;
    case 8: k = Pick<uint64_t, kForward>(predictor, byte_planes); break;
    default: return;
  }
  k(in, predictor == Predictor::kNone ? nullptr : ref, n, out);
}

}  // namespace

void ForwardTransform(Predictor predictor, bool byte_planes, size_t width, const uint8_t* data,
                      const uint8_t* ref, size_t n, uint8_t* out) {
  Run<true>(predictor, byte_planes, width, data, ref, n, out);
}

void InverseTransform(Predictor predictor, bool byte_planes, size_t width, const uint8_t* in,
                      const uint8_t* ref, size_t n, uint8_t* out) {
  Run<false>(predictor, byte_planes, width, in, ref, n, out);
}

}  // namespace ckz
