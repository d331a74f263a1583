// The emulator's instruction cases on the real GPU (benchmarks/gpu/emu_isa_check.py drives it).
// Usage: emu_isa_check IN OUT. IN (written by the Python side, little endian):
//   u32 ncvt; u16 smem[32*8]; u32 addr[32]; for f16, bf16, e4m3: u32 a[32*4], u32 b[32*2], f32 c[32*4];
//   u32 shfl_vals[32]; f32 cvt_in[ncvt]
// OUT: u32 ldm[6][32*4] (x1, x2, x4, x1.trans, x2.trans, x4.trans); f32 mma[3][32*4];
//   u32 shfl[4 modes][3 widths][NARGS][32]; u32 enc[4][ncvt] (f16, bf16, e4m3 satfinite, e5m2 satfinite);
//   f32 dec16[2][65536] (f16, bf16); f32 dec8[2][256] (e4m3, e5m2)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
  fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_)); exit(2); } } while (0)

constexpr int NARGS = 6;
__constant__ int kArgs[NARGS] = {0, 1, 3, 5, 8, 17};

__global__ void ldm_kernel(const unsigned short* smem_in, const unsigned* addr, unsigned* out) {
  __shared__ __align__(16) unsigned short s[32 * 8];
  const int l = threadIdx.x;
  for (int i = 0; i < 8; ++i) s[l * 8 + i] = smem_in[l * 8 + i];
  __syncthreads();
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(s)) + addr[l];
  unsigned r[4] = {0, 0, 0, 0};
  unsigned* o = out;
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];" : "=r"(r[0]) : "r"(a));
  for (int i = 0; i < 4; ++i) o[l * 4 + i] = i < 1 ? r[i] : 0;
  o += 128;
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  for (int i = 0; i < 4; ++i) o[l * 4 + i] = i < 2 ? r[i] : 0;
  o += 128;
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
  for (int i = 0; i < 4; ++i) o[l * 4 + i] = r[i];
  o += 128;
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];" : "=r"(r[0]) : "r"(a));
  for (int i = 0; i < 4; ++i) o[l * 4 + i] = i < 1 ? r[i] : 0;
  o += 128;
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  for (int i = 0; i < 4; ++i) o[l * 4 + i] = i < 2 ? r[i] : 0;
  o += 128;
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
  for (int i = 0; i < 4; ++i) o[l * 4 + i] = r[i];
}

template <int KIND>  // 0 f16, 1 bf16, 2 e4m3
__global__ void mma_kernel(const unsigned* A, const unsigned* B, const float* C, float* D) {
  const int l = threadIdx.x;
  const unsigned* a = A + 4 * l;
  const unsigned* b = B + 2 * l;
  float d[4] = {C[4 * l], C[4 * l + 1], C[4 * l + 2], C[4 * l + 3]};
  if (KIND == 0)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};" : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else if (KIND == 1)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};" : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};" : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  for (int i = 0; i < 4; ++i) D[4 * l + i] = d[i];
}

__global__ void shfl_kernel(const unsigned* vals, unsigned* out) {
  const int l = threadIdx.x;
  const unsigned v = vals[l];
  const int widths[3] = {32, 16, 8};
  for (int w = 0; w < 3; ++w)
    for (int a = 0; a < NARGS; ++a) {
      const int arg = kArgs[a], width = widths[w];
      unsigned* o = out + ((0 * 3 + w) * NARGS + a) * 32;
      o[l] = __shfl_sync(0xffffffffu, v, arg, width);
      o += 3 * NARGS * 32;
      o[l] = __shfl_up_sync(0xffffffffu, v, arg, width);
      o += 3 * NARGS * 32;
      o[l] = __shfl_down_sync(0xffffffffu, v, arg, width);
      o += 3 * NARGS * 32;
      o[l] = __shfl_xor_sync(0xffffffffu, v, arg, width);
    }
}

__global__ void cvt_kernel(const float* x, int n, unsigned* enc, float* dec16, float* dec8) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    enc[i] = __half_as_ushort(__float2half_rn(x[i]));
    enc[n + i] = __bfloat16_as_ushort(__float2bfloat16_rn(x[i]));
    enc[2 * n + i] = __nv_cvt_float_to_fp8(x[i], __NV_SATFINITE, __NV_E4M3);
    enc[3 * n + i] = __nv_cvt_float_to_fp8(x[i], __NV_SATFINITE, __NV_E5M2);
  }
  if (i < 65536) {
    dec16[i] = __half2float(__ushort_as_half(static_cast<unsigned short>(i)));
    dec16[65536 + i] = __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(i)));
  }
  if (i < 256) {
    dec8[i] = __half2float(__half(__nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(i), __NV_E4M3)));
    dec8[256 + i] = __half2float(__half(__nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(i), __NV_E5M2)));
  }
}

template <typename T>
T* dev(const std::vector<T>& h) {
  T* p;
  CK(cudaMalloc(&p, h.size() * sizeof(T) + 16));
  CK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return p;
}
template <typename T>
void back(std::vector<T>& h, const T* p) { CK(cudaMemcpy(h.data(), p, h.size() * sizeof(T), cudaMemcpyDeviceToHost)); }

int main(int argc, char** argv) {
  if (argc != 3) { fprintf(stderr, "usage: %s IN OUT\n", argv[0]); return 1; }
  FILE* f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 1; }
  unsigned ncvt = 0;
  auto rd = [&](void* p, size_t n) { if (fread(p, 1, n, f) != n) { fprintf(stderr, "short input\n"); exit(1); } };
  rd(&ncvt, 4);
  std::vector<unsigned short> smem(256);
  std::vector<unsigned> addr(32), a(3 * 128), b(3 * 64), vals(32);
  std::vector<float> c(3 * 128), x(ncvt);
  rd(smem.data(), 512);
  rd(addr.data(), 128);
  for (int k = 0; k < 3; ++k) { rd(&a[k * 128], 512); rd(&b[k * 64], 256); rd(&c[k * 128], 512); }
  rd(vals.data(), 128);
  rd(x.data(), 4 * ncvt);
  fclose(f);
  int dv = 0, major = 0, minor = 0;
  CK(cudaGetDevice(&dv));
  CK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dv));
  CK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dv));
  std::vector<unsigned> ldm(6 * 128), sh(4 * 3 * NARGS * 32), enc(4 * ncvt);
  std::vector<float> mma(3 * 128, 0.0f), dec16(2 * 65536), dec8(512);
  unsigned* d_ldm = dev(ldm);
  ldm_kernel<<<1, 32>>>(dev(smem), dev(addr), d_ldm);
  float* d_mma = dev(mma);
  const unsigned *da = dev(a), *db = dev(b);
  const float* dc = dev(c);
  mma_kernel<0><<<1, 32>>>(da, db, dc, d_mma);
  mma_kernel<1><<<1, 32>>>(da + 128, db + 64, dc + 128, d_mma + 128);
  if (major * 10 + minor >= 89) mma_kernel<2><<<1, 32>>>(da + 256, db + 128, dc + 256, d_mma + 256);
  unsigned* d_sh = dev(sh);
  shfl_kernel<<<1, 32>>>(dev(vals), d_sh);
  unsigned* d_enc = dev(enc);
  float *d_dec16 = dev(dec16), *d_dec8 = dev(dec8);
  const unsigned nthreads = ncvt > 65536 ? ncvt : 65536;
  cvt_kernel<<<(nthreads + 255) / 256, 256>>>(dev(x), static_cast<int>(ncvt), d_enc, d_dec16, d_dec8);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  back(ldm, d_ldm); back(mma, d_mma); back(sh, d_sh); back(enc, d_enc); back(dec16, d_dec16); back(dec8, d_dec8);
  FILE* o = fopen(argv[2], "wb");
  if (!o) { perror(argv[2]); return 1; }
  fwrite(ldm.data(), 4, ldm.size(), o); fwrite(mma.data(), 4, mma.size(), o); fwrite(sh.data(), 4, sh.size(), o);
  fwrite(enc.data(), 4, enc.size(), o); fwrite(dec16.data(), 4, dec16.size(), o); fwrite(dec8.data(), 4, dec8.size(), o);
  fclose(o);
  printf("sm_%d%d\n", major, minor);
  return 0;
}
