#include "common/transforms.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

#if defined(__SSE2__)
// 16 elements at a time: the planes' bytes interleaved with SSE2 unpacks, then the predictor in
// the same integer lanes (exact: wrapping adds, shifts, XOR), so the result is that of the scalar
// loop below bit for bit.
template <Predictor P, int kBits>
inline __m128i UnpredictLanes(__m128i z, const uint8_t* ref, size_t at) {
  if constexpr (P == Predictor::kNone) {
    return z;
  } else {
    const __m128i r = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ref + at));
    if constexpr (P == Predictor::kXorRef) return _mm_xor_si128(z, r);
    const __m128i one = kBits == 16 ? _mm_set1_epi16(1) : _mm_set1_epi32(1);
    const __m128i low = _mm_and_si128(z, one);
    const __m128i half = kBits == 16 ? _mm_srli_epi16(z, 1) : _mm_srli_epi32(z, 1);
    const __m128i mask = kBits == 16 ? _mm_sub_epi16(_mm_setzero_si128(), low)
                                     : _mm_sub_epi32(_mm_setzero_si128(), low);
    const __m128i d = _mm_xor_si128(half, mask);
    return kBits == 16 ? _mm_add_epi16(r, d) : _mm_add_epi32(r, d);
  }
}

template <typename U, Predictor P>
size_t InversePlanesSse2(const uint8_t* const* planes, const uint8_t* ref, size_t count,
                         uint8_t* out) {
  auto load = [&](size_t p, size_t i) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(planes[p] + i));
  };
  auto store = [&](size_t i, size_t k, __m128i v) {  // the k-th 16 bytes of element i onwards
    const size_t at = i * sizeof(U) + 16 * k;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + at), UnpredictLanes<P, 8 * sizeof(U)>(v, ref, at));
  };
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    if constexpr (sizeof(U) == 2) {
      const __m128i a = load(0, i), b = load(1, i);
      store(i, 0, _mm_unpacklo_epi8(a, b));
      store(i, 1, _mm_unpackhi_epi8(a, b));
    } else {
      const __m128i a = load(0, i), b = load(1, i), c = load(2, i), d = load(3, i);
      const __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
      const __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
      store(i, 0, _mm_unpacklo_epi16(ab_lo, cd_lo));
      store(i, 1, _mm_unpackhi_epi16(ab_lo, cd_lo));
      store(i, 2, _mm_unpacklo_epi16(ab_hi, cd_hi));
      store(i, 3, _mm_unpackhi_epi16(ab_hi, cd_hi));
    }
  }
  return i;
}
#endif

template <typename U, Predictor P>
void InversePlanes(const uint8_t* const* planes, const uint8_t* __restrict ref, size_t count,
                   uint8_t* __restrict out) {
  constexpr size_t w = sizeof(U);
  size_t i = 0;
#if defined(__SSE2__)
  if constexpr (w == 2 || w == 4) i = InversePlanesSse2<U, P>(planes, ref, count, out);
#endif
  for (; i < count; ++i) {
    U v = 0;
    for (size_t b = 0; b < w; ++b) v |= U(U(planes[b][i]) << (8 * b));
    const U r = P == Predictor::kNone ? U(0) : LoadElem<U>(ref + i * w);
    StoreElem<U>(out + i * w, Unpredict<U, P>(v, r));
  }
}

template <typename U, Predictor P, bool kPlanes>
void Inverse(const uint8_t* __restrict in, const uint8_t* __restrict ref, size_t n,
             uint8_t* __restrict out) {
  constexpr size_t w = sizeof(U);
  const size_t count = n / w;
  if constexpr (kPlanes) {
    const uint8_t* planes[w];
    for (size_t b = 0; b < w; ++b) planes[b] = in + b * count;
    InversePlanes<U, P>(planes, ref, count, out);
  } else {
    for (size_t i = 0; i < count; ++i) {
      const U r = P == Predictor::kNone ? U(0) : LoadElem<U>(ref + i * w);
      StoreElem<U>(out + i * w, Unpredict<U, P>(LoadElem<U>(in + i * w), r));
    }
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

template <typename U>
void PlanesKernel(Predictor predictor, const uint8_t* const* planes, const uint8_t* ref,
                  size_t count, uint8_t* out) {
  switch (predictor) {
    case Predictor::kXorRef: return InversePlanes<U, Predictor::kXorRef>(planes, ref, count, out);
    case Predictor::kSubRef: return InversePlanes<U, Predictor::kSubRef>(planes, ref, count, out);
    default: return InversePlanes<U, Predictor::kNone>(planes, nullptr, count, out);
  }
}

}  // namespace

void InverseTransformPlanes(Predictor predictor, size_t width, const uint8_t* const* planes,
                            const uint8_t* ref, size_t n, uint8_t* out) {
  switch (width) {
    case 1: return InverseTransform(predictor, false, 1, planes[0], ref, n, out);
    case 2: return PlanesKernel<uint16_t>(predictor, planes, ref, n / 2, out);
    case 4: return PlanesKernel<uint32_t>(predictor, planes, ref, n / 4, out);
    case 8: return PlanesKernel<uint64_t>(predictor, planes, ref, n / 8, out);
    default: return;
  }
}

void ForwardTransform(Predictor predictor, bool byte_planes, size_t width, const uint8_t* data,
                      const uint8_t* ref, size_t n, uint8_t* out) {
  Run<true>(predictor, byte_planes, width, data, ref, n, out);
}

void InverseTransform(Predictor predictor, bool byte_planes, size_t width, const uint8_t* in,
                      const uint8_t* ref, size_t n, uint8_t* out) {
  Run<false>(predictor, byte_planes, width, in, ref, n, out);
}

}  // namespace ckz
