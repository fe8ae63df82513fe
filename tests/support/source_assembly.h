// Spec 8.1, written apart from the decoder's implementation so tests and the conformance
// generator can check the decoder against it: a source file's bytes from its prolog, splits,
// tensors and CRC-32 patches.
#ifndef CKZ_TESTS_SUPPORT_SOURCE_ASSEMBLY_H_
#define CKZ_TESTS_SUPPORT_SOURCE_ASSEMBLY_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "ckz/archive.h"

namespace ckz::testing {

// `bytes_of(k)` gives the decoded bytes of the file's k-th tensor (f.tensors[k]).
std::vector<uint8_t> AssembleSourceFile(
    const SourceFileInfo& f, const std::function<const std::vector<uint8_t>&(size_t k)>& bytes_of);

}  // namespace ckz::testing

#endif  // CKZ_TESTS_SUPPORT_SOURCE_ASSEMBLY_H_
