// The suite of conformance cases: each case is checked with the reference library, written
// under cases/<name>/ and recorded in manifest.json.
#ifndef CKZ_CONFORMANCE_GENERATOR_VECTOR_SUITE_H_
#define CKZ_CONFORMANCE_GENERATOR_VECTOR_SUITE_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "ckz/io.h"
#include "ckz/status.h"
#include "vector_builder.h"

namespace ckz::vectors {

struct Case {
  std::string name;
  std::string profile;  // "core" or "full"
  std::string description;
  std::vector<std::string> features;
  std::vector<std::pair<std::string, Bytes>> files;  // "input.ckz" first, then parents etc.
  std::map<std::string, Bytes> expected;             // valid: path -> decoded file
  // Valid, without source files (spec 8): what a reader writes is its own choice, so the
  // manifest names no expected file and a decoder passes by decoding without error.
  bool output_reader_defined = false;
  std::optional<ErrorCode> error;                    // invalid: the error it must produce
  std::string rule;                                  // invalid: the rule of spec/ckz.md it breaks
  // Invalid cases: how the suite shows that `rule` is what rejects the file (Suite::CheckRule).
  // A rule whose error no other rule reports needs nothing. Otherwise the reference decodes the
  // file again with `rule` switched off and must then accept it, or fail with
  // `error_without_rule`: the later error that the fault necessarily causes as well (never
  // `error` itself). `by_construction` instead says why that cannot be run for this file.
  std::optional<ErrorCode> error_without_rule;
  std::string by_construction;

  Case&& WithoutRuleFails(ErrorCode e) && {
    error_without_rule = e;
    return std::move(*this);
  }
  Case&& ByConstruction(std::string why) && {
    by_construction = std::move(why);
    return std::move(*this);
  }
};

class Suite {
 public:
  // Deletes root/cases and root/manifest.json.
  explicit Suite(fs::path root);
  ~Suite();

  // Checks the case with the reference library (a valid case decodes to exactly its expected
  // files, an invalid one fails with its error and leaves no file) and writes it; dies if not.
  void Add(Case c);
  // Writes manifest.json.
  void Finish();

 private:
  Status Decode(const fs::path& dir, const fs::path& out, VerifyReport* report);
  void CheckValid(const Case& c, const fs::path& dir);
  void CheckInvalid(const Case& c, const fs::path& dir);
  void CheckRule(const Case& c, const fs::path& dir);
  std::string Entry(const Case& c, const std::string& ind) const;

  fs::path root_, scratch_;
  std::set<std::string> names_;
  std::vector<std::string> entries_;
  std::map<std::string, int> counts_;
  std::map<std::string, int> rule_checks_;  // how CheckRule showed it -> cases
  std::set<std::string> rules_;             // the rules the invalid cases name
  uint64_t total_ = 0;
};

// Shorthands for making cases.
Case Valid(const std::string& name, const std::string& profile, const std::string& description,
           const Ckpt& ckpt, const Bytes& input, std::vector<std::string> features = {});
Case Invalid(const std::string& name, const std::string& profile, const std::string& rule,
             ErrorCode error, const std::string& description, const Bytes& input,
             std::vector<std::string> features = {});
// An invalid link of the full profile with its parent as parent-1.ckz.
Case ChainInvalid(const std::string& name, const std::string& rule, ErrorCode error,
                  const std::string& description, const Bytes& input, const Bytes& parent,
                  std::vector<std::string> features = {});
// A valid chain of the full profile (WriteChain, ChainNames): the last level is input.ckz.
Case ChainCase(const std::string& name, const std::string& description,
               const std::vector<Level>& levels, std::vector<std::string> features = {});

}  // namespace ckz::vectors

#endif  // CKZ_CONFORMANCE_GENERATOR_VECTOR_SUITE_H_
