// Writes the CKZ conformance vectors: conformance/cases/<name>/ and conformance/manifest.json.
//
//   make_vectors <conformance folder>
//
// The whole cases/ tree and manifest.json are rebuilt from fixed seeds; the output is the same
// bytes on every run and every machine (no time, no host random, no float arithmetic, no
// thread-count dependence: every coding choice of the encoder is forced). Vectors change only
// when the format (or a case) changes -- or when libzstd or FlatBuffers start writing other
// bytes for the same input, which the ctest `conformance_vectors_current` would then report.
//
// Every case is checked before it is written:
//  - a valid case is decoded by the reference library (ChainReader + RestoreFilesInto) from the
//    case folder; the files it produces must be exactly the checkpoint files the case was made
//    from (byte-identical), and VerifyChain must accept the content id. The expected/ files are
//    the decoded files.
//  - an invalid case must fail with the error it names, leaving no file behind.
//
// Valid files are written with the reference Writer (forced codings). Invalid files, and valid
// files with unusual layouts, are made by taking a valid file apart into a `Model` (its header
// structs plus each chunk's stored bytes), changing exactly one thing, and assembling it again.
//
// The cases are made in generator/: vector_builder.h (data, checkpoints, encoding, file
// surgery), vector_suite.h (checking, writing, the manifest) and one vectors_<area>.cc per
// coding tool or area (vectors.h lists them, in manifest order).
#include <cstdio>
#include <filesystem>

#include "generator/vectors.h"

using namespace ckz::vectors;  // NOLINT: a small tool

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr,
            "usage: make_vectors <conformance folder>\n"
            "Rebuilds <folder>/cases/ and <folder>/manifest.json (deleting what was there).\n");
    return 2;
  }
  const fs::path root = argv[1];
  if (!fs::is_directory(root)) Die(root.string() + " is not a folder");
  Suite suite(root);
  CoreValid(suite);
  ContainerInvalid(suite);
  StreamsInvalid(suite);
  ReferenceChainValid(suite);
  ReferenceChainInvalid(suite);
  QuantizedValid(suite);
  QuantizedInvalid(suite);
  CmValid(suite);
  CmInvalid(suite);
  CmfValid(suite);
  CmfInvalid(suite);
  CodedHeader(suite);
  PrologValid(suite);
  PrologInvalid(suite);
  LevelsValid(suite);
  LevelsInvalid(suite);
  KeySplitValid(suite);
  KeySplitInvalid(suite);
  LstmValid(suite);
  LstmInvalid(suite);
  LstmCmValid(suite);
  LstmCmInvalid(suite);
  suite.Finish();
  return 0;
}
