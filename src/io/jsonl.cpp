// JSONL reading and typed fields (see jsonl.h). Tested by tests/io/test_io.cpp.
#include "hashhop/io/jsonl.h"

#include "hashhop/io/input_error.h"

namespace hashhop::io {

JsonlReader::JsonlReader(std::string path) : path_(std::move(path)), in_(path_, std::ios::binary) {
  if (!in_) throw InputError(path_, 0, "", "cannot open for reading");
}

std::optional<JsonlRecord> JsonlReader::next() {
  std::string text;
  while (std::getline(in_, text)) {
    ++line_;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    JsonlRecord record;
    record.line = line_;
    try {
      record.value = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      throw InputError(path_, line_, "", "not valid JSON (byte " + std::to_string(e.byte) + ")");
    }
    if (!record.value.is_object()) throw InputError(path_, line_, "", "expected a JSON object");
    return record;
  }
  return std::nullopt;
}

namespace {
const nlohmann::json& field_of(const std::string& file, const JsonlRecord& record, const char* field) {
  auto it = record.value.find(field);
  if (it == record.value.end()) throw InputError(file, record.line, field, "missing");
  return *it;
}
}  // namespace

std::string get_string(const std::string& file, const JsonlRecord& record, const char* field) {
  const auto& value = field_of(file, record, field);
  if (!value.is_string()) throw InputError(file, record.line, field, "expected a string, got " + std::string(value.type_name()));
  return value.get<std::string>();
}

std::int64_t get_int(const std::string& file, const JsonlRecord& record, const char* field) {
  const auto& value = field_of(file, record, field);
  if (!value.is_number_integer()) throw InputError(file, record.line, field, "expected an integer, got " + std::string(value.type_name()));
  return value.get<std::int64_t>();
}

bool get_bool(const std::string& file, const JsonlRecord& record, const char* field) {
  const auto& value = field_of(file, record, field);
  if (!value.is_boolean()) throw InputError(file, record.line, field, "expected true or false, got " + std::string(value.type_name()));
  return value.get<bool>();
}

void append_json_string(std::string& out, std::string_view s) {
  out += nlohmann::json(std::string(s)).dump();
}

}  // namespace hashhop::io
