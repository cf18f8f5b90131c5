// The .npy reader and writer of the command-line tools: round trips, the forms
// numpy.save writes (float64, Fortran order, format 2.0), and clear errors.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "helpers.h"
#include "npy.h"

namespace nystream::testing {
namespace {

using cli::NpyArray;
using cli::read_npy;
using cli::write_npy;

// A .npy file as numpy writes it: magic, version, header dict, raw data.
std::string npy_file(const std::string& dict, const std::string& data, int major = 1) {
  std::string header = dict;
  const std::size_t prefix = major == 1 ? 10 : 12;
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  const std::size_t size = header.size();
  for (std::size_t b = 0; b < prefix - 8; ++b) out += static_cast<char>((size >> (8 * b)) & 0xff);
  return out + header + data;
}

template <typename T>
std::string raw(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

class Npy : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::string read_error(const std::string& path) {
    NpyArray array;
    std::string error;
    EXPECT_FALSE(read_npy(path, &array, &error));
    return error;
  }
  std::filesystem::path dir_ = temp_dir("npy");
};

TEST_F(Npy, RoundTrip) {
  const std::vector<float> values = {1.5f, -2.0f, 3.25e-8f, 4e30f, 0.0f, -0.0f};
  std::string error;
  const std::string path = (dir_ / "a.npy").string();
  ASSERT_TRUE(write_npy(path, values.data(), 2, 3, &error)) << error;
  NpyArray array;
  ASSERT_TRUE(read_npy(path, &array, &error)) << error;
  EXPECT_EQ(array.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(array.rows(), 2);
  EXPECT_EQ(array.cols(), 3);
  EXPECT_EQ(std::memcmp(array.data.data(), values.data(), 24), 0);
  EXPECT_EQ((std::filesystem::file_size(path) - 24) % 64, 0u) << "numpy aligns the data to 64 bytes";

  ASSERT_TRUE(write_npy(path, values.data(), {6}, &error)) << error;
  ASSERT_TRUE(read_npy(path, &array, &error)) << error;
  EXPECT_EQ(array.shape, std::vector<std::int64_t>{6});
  EXPECT_EQ(array.cols(), 1);
  EXPECT_EQ(array.data, values);

  ASSERT_TRUE(write_npy(path, nullptr, 0, 64, &error)) << error;
  ASSERT_TRUE(read_npy(path, &array, &error)) << error;
  EXPECT_EQ(array.rows(), 0);
  EXPECT_EQ(array.cols(), 64);
}

TEST_F(Npy, ReadsWhatNumpyWrites) {
  // np.save of np.arange(6, dtype='<f8').reshape(2, 3)
  const std::vector<double> wide = {0, 1, 2, 3, 4, 5};
  NpyArray array;
  std::string error;
  ASSERT_TRUE(read_npy(write("f8.npy", npy_file("{'descr': '<f8', 'fortran_order': False, "
                                                "'shape': (2, 3), }",
                                                raw(wide))),
                       &array, &error))
      << error;
  EXPECT_EQ(array.data, (std::vector<float>{0, 1, 2, 3, 4, 5}));
  // np.save of that array's transpose: shape (3, 2), data in Fortran order.
  ASSERT_TRUE(read_npy(write("fortran.npy",
                             npy_file("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }",
                                      raw(std::vector<float>{0, 1, 2, 3, 4, 5}))),
                       &array, &error))
      << error;
  EXPECT_EQ(array.shape, (std::vector<std::int64_t>{3, 2}));
  EXPECT_EQ(array.data, (std::vector<float>{0, 3, 1, 4, 2, 5}));
  // Format 2.0 (4-byte header length).
  ASSERT_TRUE(read_npy(write("v2.npy", npy_file("{'descr': '<f4', 'fortran_order': False, "
                                                "'shape': (2,), }",
                                                raw(std::vector<float>{7, 8}), 2)),
                       &array, &error))
      << error;
  EXPECT_EQ(array.data, (std::vector<float>{7, 8}));
}

TEST_F(Npy, Errors) {
  const std::string f4 = raw(std::vector<float>{1, 2, 3, 4, 5, 6});
  std::string path = write("magic.npy", "PK\x03\x04 not numpy");
  EXPECT_EQ(read_error(path), path + ": not a .npy file (no \\x93NUMPY magic)");
  path = write("int.npy", npy_file("{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", f4));
  EXPECT_EQ(read_error(path), path + ": dtype '<i4', expected float32 '<f4' (or float64 '<f8')");
  path = write("big.npy", npy_file("{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", f4));
  EXPECT_EQ(read_error(path), path + ": dtype '>f4', expected float32 '<f4' (or float64 '<f8')");
  path = write("3d.npy",
               npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }", f4));
  EXPECT_EQ(read_error(path),
            path + ": array has 3 dimensions, expected 1 (values) or 2 (tokens x dims)");
  path = write("short.npy",
               npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", f4));
  EXPECT_EQ(read_error(path), path + ": shape (2, 4) needs 32 bytes of data, file has 24");
  path = write("huge.npy", npy_file("{'descr': '<f4', 'fortran_order': False, "
                                    "'shape': (99999999999, 99999999999), }",
                                    f4));
  EXPECT_EQ(read_error(path), path + ": array too large");
  path = write("noshape.npy", npy_file("{'descr': '<f4', 'fortran_order': False, }", f4));
  EXPECT_EQ(read_error(path), path + ": header has no 'shape' tuple");
  std::string cut = npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", f4);
  path = write("cut.npy", cut.substr(0, 40));
  EXPECT_EQ(read_error(path), path + ": header length 118 runs past the end of the file");
  EXPECT_EQ(read_error((dir_ / "absent.npy").string()),
            (dir_ / "absent.npy").string() + ": cannot open (No such file or directory)");
  std::string error;
  EXPECT_FALSE(write_npy("/nonexistent/x.npy", nullptr, 0, 1, &error));
  EXPECT_EQ(error, "/nonexistent/x.npy: cannot create (No such file or directory)");
}

}  // namespace
}  // namespace nystream::testing
