#include "npy.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace nystream::cli {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;
// Element counts above this are refused before anything is allocated.
constexpr std::int64_t kMaxElements = std::int64_t{1} << 34;

bool fail(std::string* error, const std::string& path, const std::string& what) {
  if (error) *error = path + ": " + what;
  return false;
}

// The value text after `'key':` in the header dict, or npos.
std::size_t find_value(const std::string& header, const std::string& key) {
  const std::size_t at = header.find("'" + key + "'");
  if (at == std::string::npos) return at;
  const std::size_t colon = header.find(':', at);
  if (colon == std::string::npos) return colon;
  return header.find_first_not_of(' ', colon + 1);
}

// Parses the header dict `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
bool parse_header(const std::string& header, std::string* descr, bool* fortran,
                  std::vector<std::int64_t>* shape, std::string* problem) {
  std::size_t at = find_value(header, "descr");
  if (at == std::string::npos || header[at] != '\'') {
    *problem = "header has no 'descr'";
    return false;
  }
  const std::size_t end = header.find('\'', at + 1);
  if (end == std::string::npos) {
    *problem = "header 'descr' is not a string";
    return false;
  }
  *descr = header.substr(at + 1, end - at - 1);

  at = find_value(header, "fortran_order");
  if (at != std::string::npos && header.compare(at, 4, "True") == 0) {
    *fortran = true;
  } else if (at != std::string::npos && header.compare(at, 5, "False") == 0) {
    *fortran = false;
  } else {
    *problem = "header has no 'fortran_order' True/False";
    return false;
  }

  at = find_value(header, "shape");
  if (at == std::string::npos || header[at] != '(') {
    *problem = "header has no 'shape' tuple";
    return false;
  }
  const std::size_t close = header.find(')', at);
  if (close == std::string::npos) {
    *problem = "header 'shape' tuple is not closed";
    return false;
  }
  shape->clear();
  std::size_t i = at + 1;
  while (i < close) {
    if (header[i] == ' ' || header[i] == ',') {
      ++i;
      continue;
    }
    std::int64_t value = 0;
    std::size_t digits = 0;
    for (; i < close && header[i] >= '0' && header[i] <= '9'; ++i, ++digits) {
      if (value > kMaxElements) {
        *problem = "shape dimension too large";
        return false;
      }
      value = value * 10 + (header[i] - '0');
    }
    if (digits == 0) {
      *problem = "header 'shape' is not a tuple of integers";
      return false;
    }
    shape->push_back(value);
  }
  return true;
}

}  // namespace

bool read_npy(const std::string& path, NpyArray* out, std::string* error) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return fail(error, path, "cannot open (" + std::string(std::strerror(errno)) + ")");
  file.seekg(0, std::ios::end);
  const std::streamoff file_size = file.tellg();
  file.seekg(0);

  char preamble[12];
  if (file_size < 10 || !file.read(preamble, 10) || std::memcmp(preamble, kMagic, kMagicSize) != 0)
    return fail(error, path, "not a .npy file (no \\x93NUMPY magic)");
  const int major = static_cast<unsigned char>(preamble[6]);
  std::uint64_t header_size = 0;
  std::streamoff prefix = 0;
  if (major == 1) {
    header_size = static_cast<unsigned char>(preamble[8]) |
                  static_cast<unsigned>(static_cast<unsigned char>(preamble[9])) << 8;
    prefix = 10;
  } else if (major == 2 || major == 3) {
    if (!file.read(preamble + 10, 2)) return fail(error, path, "truncated header");
    for (int b = 3; b >= 0; --b)
      header_size = header_size << 8 | static_cast<unsigned char>(preamble[8 + b]);
    prefix = 12;
  } else {
    return fail(error, path, ".npy format version " + std::to_string(major) + " is not supported");
  }
  if (static_cast<std::uint64_t>(file_size - prefix) < header_size)
    return fail(error, path, "header length " + std::to_string(header_size) +
                                 " runs past the end of the file");
  std::string header(header_size, '\0');
  if (!file.read(header.data(), static_cast<std::streamsize>(header_size)))
    return fail(error, path, "truncated header");

  std::string descr, problem;
  bool fortran = false;
  std::vector<std::int64_t> shape;
  if (!parse_header(header, &descr, &fortran, &shape, &problem)) return fail(error, path, problem);
  if (descr != "<f4" && descr != "<f8")
    return fail(error, path, "dtype '" + descr + "', expected float32 '<f4' (or float64 '<f8')");
  if (shape.empty() || shape.size() > 2)
    return fail(error, path, "array has " + std::to_string(shape.size()) +
                                 " dimensions, expected 1 (values) or 2 (tokens x dims)");
  std::int64_t count = 1;
  for (std::int64_t dim : shape) {
    if (dim != 0 && count > kMaxElements / dim) return fail(error, path, "array too large");
    count *= dim;
  }
  const std::int64_t item = descr == "<f4" ? 4 : 8;
  const std::int64_t data_size = file_size - prefix - static_cast<std::int64_t>(header_size);
  if (data_size != count * item) {
    std::ostringstream what;
    what << "shape (" << shape[0] << (shape.size() == 2 ? ", " + std::to_string(shape[1]) : ",")
         << ") needs " << count * item << " bytes of data, file has " << data_size;
    return fail(error, path, what.str());
  }

  std::vector<float> values(static_cast<std::size_t>(count));
  if (item == 4) {
    if (!file.read(reinterpret_cast<char*>(values.data()), count * 4))
      return fail(error, path, "read error");
  } else {
    std::vector<double> wide(static_cast<std::size_t>(count));
    if (!file.read(reinterpret_cast<char*>(wide.data()), count * 8))
      return fail(error, path, "read error");
    for (std::int64_t i = 0; i < count; ++i) values[i] = static_cast<float>(wide[i]);
  }
  if (fortran && shape.size() == 2) {
    // Column-major on disk (numpy.save of a transposed view): reorder to rows.
    std::vector<float> rows(values.size());
    for (std::int64_t r = 0; r < shape[0]; ++r)
      for (std::int64_t c = 0; c < shape[1]; ++c) rows[r * shape[1] + c] = values[c * shape[0] + r];
    values.swap(rows);
  }
  out->shape = std::move(shape);
  out->data = std::move(values);
  return true;
}

bool write_npy(const std::string& path, const float* data, const std::vector<std::int64_t>& shape,
               std::string* error) {
  if (shape.empty() || shape.size() > 2) return fail(error, path, "can only write 1-D or 2-D arrays");
  std::int64_t count = 1;
  for (std::int64_t dim : shape) {
    if (dim < 0) return fail(error, path, "negative dimension");
    count *= dim;
  }
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(shape[0]) +
                       (shape.size() == 2 ? ", " + std::to_string(shape[1]) + ")" : ",)") + ", }";
  // numpy pads the header with spaces and a newline so the data starts 64-byte aligned.
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');

  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) return fail(error, path, "cannot create (" + std::string(std::strerror(errno)) + ")");
  const unsigned char preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                      static_cast<unsigned char>(header.size() & 0xff),
                                      static_cast<unsigned char>(header.size() >> 8)};
  bool ok = std::fwrite(preamble, 1, 10, file) == 10 &&
            std::fwrite(header.data(), 1, header.size(), file) == header.size() &&
            (count == 0 ||
             std::fwrite(data, sizeof(float), static_cast<std::size_t>(count), file) ==
                 static_cast<std::size_t>(count));
  ok = std::fclose(file) == 0 && ok;
  if (!ok) return fail(error, path, "write error (" + std::string(std::strerror(errno)) + ")");
  return true;
}

bool write_npy(const std::string& path, const float* data, std::int64_t rows, std::int64_t cols,
               std::string* error) {
  return write_npy(path, data, std::vector<std::int64_t>{rows, cols}, error);
}

}  // namespace nystream::cli
