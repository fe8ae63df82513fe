// Untrusted surface: the lstm-cm index codec (format 0.11, spec 7.11.7): the range decoder,
// the cm index context model and the integer LSTM + logistic mixer over arbitrary stream
// bytes, with arbitrary well-formed models (every int16 weight is allowed), roles, codebook
// sizes, parent/aux index arrays, row width and first element. The input is
//
//   0..19  the model block, as fuzz_lstm.cc's bytes 0..19 (fuzz_lstm_model.h: byte 0 bits 2-3
//          hidden, bits 4-5 role; byte 1 clip; byte 2 the shifts; byte 3 the weight and
//          mix_init ranges; bytes 12..19 the seed; bytes 4..11 unused)
//   20..   fuzz_cm.cc's input: its 14-byte header (K, flags, K_P, K_A, count, row, first, L),
//          the stream, then the context bytes
//
// fuzz/make_cm_corpus.cc --lstm writes seeds in this format from real lstm-cm streams, coded
// with the model this target rebuilds from each seed's block. What is checked is fuzz_cm's list
// (index_stream_checks.h), with the model: a pure decode, consistent results, indices at most
// K, and round trips of decoded indices and of indices taken from the context bytes; the
// model built from the block is WellFormed() (the only models a decoder runs).
#include <cstddef>
#include <cstdint>

#include "common/index_model.h"
#include "fuzz_check.h"
#include "fuzz_lstm_model.h"
#include "index_stream_checks.h"

namespace {

// An LSTM step per index, slowed ~100x by the coverage instrumentation (fuzz_lstm.cc): the
// chunk is capped lower than fuzz_cm's 4096.
constexpr size_t kMaxCount = 1024;
constexpr size_t kModelBlock = 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kModelBlock + ckz_fuzz::kIndexHeader) return 0;
  const ckz::LstmModel model = ckz_fuzz::MakeFuzzLstmModel(data);
  FUZZ_CHECK(model.WellFormed());
  ckz::IndexModelInputs in;
  in.lstm = &model;
  in.role = (data[0] >> 4) & 3;
  ckz_fuzz::CheckIndexStream(in, data + kModelBlock, size - kModelBlock, kMaxCount);
  return 0;
}
