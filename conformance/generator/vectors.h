// The groups of conformance cases, one file each, by coding tool or area. make_vectors.cc calls
// them in this order, which is the order of manifest.json. A new coding tool gets its own
// vectors_<tool>.cc (built from vector_builder.h and vector_suite.h), a line here and a call in
// make_vectors.cc.
#ifndef CKZ_CONFORMANCE_GENERATOR_VECTORS_H_
#define CKZ_CONFORMANCE_GENERATOR_VECTORS_H_

#include "vector_suite.h"

namespace ckz::vectors {

// vectors_core.cc: valid files of the core profile (container, stored and zstd streams, byte
// planes, source files, layouts, forward compatibility).
void CoreValid(Suite& s);
// vectors_container.cc: the container's rules (spec 9: preamble, header, tensors, owners,
// source files, metadata, layout), one broken rule per file.
void ContainerInvalid(Suite& s);
// vectors_streams.cc: coding tool 1, stored and zstd streams (spec 7.1, 7.2, 7.5) that break
// their rules.
void StreamsInvalid(Suite& s);
// vectors_chain.cc: reference chains and predictors (spec 7.4, 10.2).
void ReferenceChainValid(Suite& s);
void ReferenceChainInvalid(Suite& s);
// vectors_quantized.cc: quantized tensors (spec 7.6).
void QuantizedValid(Suite& s);
void QuantizedInvalid(Suite& s);
// vectors_cm.cc: cm-coded index streams (spec 7.7).
void CmValid(Suite& s);
void CmInvalid(Suite& s);
// vectors_cmf.cc: cmf-coded float values (spec 7.8).
void CmfValid(Suite& s);
void CmfInvalid(Suite& s);
// vectors_coded_header.cc: coded headers (spec 4.1, rule H8).
void CodedHeader(Suite& s);
// vectors_prolog.cc: coded prologs (spec 8.4).
void PrologValid(Suite& s);
void PrologInvalid(Suite& s);
// vectors_levels.cc: level quantization (spec 7.9, format 0.7).
void LevelsValid(Suite& s);
void LevelsInvalid(Suite& s);
// vectors_keysplit.cc: the KeySplit predictor for 16-bit floats (spec 7.10, format 0.8).
void KeySplitValid(Suite& s);
void KeySplitInvalid(Suite& s);
// vectors_lstm.cc: the LSTM level model and the lstm stream codec (spec 7.11, format 0.9).
void LstmValid(Suite& s);
void LstmInvalid(Suite& s);
// vectors_lstm_cm.cc: the lstm-cm index codec (spec 7.11.7, format 0.11).
void LstmCmValid(Suite& s);
void LstmCmInvalid(Suite& s);

}  // namespace ckz::vectors

#endif  // CKZ_CONFORMANCE_GENERATOR_VECTORS_H_
