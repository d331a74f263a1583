// tilec AscendC emulation: GlobalTensor, LocalTensor, TPipe, TQue, TBuf and the checks every data access
// goes through (ownership, alignment, size; rules 1, 2, 5, 6, 7, 12, 16 of docs/backends/ascend.md, "Rules checked").
#pragma once
#include "runtime.h"
#include <exception>

namespace AscendC {

template <typename T> class GlobalTensor {
  public:
    GlobalTensor() = default;
    void SetGlobalBuffer(__gm__ T* p, uint64_t n) {
        size_t rem = emu::GmRemaining(p);
        if (rem == 0) emu::Fail(16, "SetGlobalBuffer: pointer is not inside a GmAlloc allocation");
        if (n * sizeof(T) > rem)
            emu::Fail(16, emu::Str("SetGlobalBuffer: ", n, " elements run past the end of the GM allocation (",
                                   rem / sizeof(T), " elements left)"));
        base_ = p; size_ = n;
    }
    void SetGlobalBuffer(__gm__ T* p) {
        size_t rem = emu::GmRemaining(p);
        if (rem == 0) emu::Fail(16, "SetGlobalBuffer: pointer is not inside a GmAlloc allocation");
        base_ = p; size_ = rem / sizeof(T);
    }
    GlobalTensor operator[](uint64_t off) const {
        if (off > size_) emu::Fail(16, emu::Str("GlobalTensor offset ", off, " past its size ", size_));
        GlobalTensor r; r.base_ = base_ + off; r.size_ = size_ - off; return r;
    }
    T GetValue(uint64_t i) const { Check(i, 1); return base_[i]; }
    void SetValue(uint64_t i, T v) const { Check(i, 1); base_[i] = v; }
    __gm__ T* GetPhyAddr() const { return base_; }
    __gm__ T* GetPhyAddr(uint64_t off) const { return base_ + off; }
    uint64_t GetSize() const { return size_; }
    void SetL2CacheHint(int) {}
    // Emulation helper: bounds-check [i, i+n) and return the host pointer.
    T* Ptr(uint64_t i, uint64_t n) const { Check(i, n); return base_ + i; }
    void Check(uint64_t i, uint64_t n) const {
        if (!base_) emu::Fail(16, "GlobalTensor used before SetGlobalBuffer");
        if (i + n > size_) emu::Fail(16, emu::Str("GM access [", i, ", ", i + n, ") outside the GlobalTensor's ", size_, " elements"));
    }
  private:
    T* base_ = nullptr;
    uint64_t size_ = 0;
};

template <typename T> class LocalTensor {
  public:
    using PrimType = T;
    LocalTensor() = default;
    LocalTensor(TPosition pos, uint32_t byteOff, uint32_t sizeElems) : pos_(pos), off_(byteOff), size_(sizeElems) {}
    LocalTensor operator[](uint32_t off) const {
        if (off > size_) emu::Fail(5, emu::Str("LocalTensor offset ", off, " past its size ", size_));
        return LocalTensor(pos_, off_ + off * (uint32_t)sizeof(T), size_ - off);
    }
    T GetValue(uint32_t i) const { emu::HzScalar(); return *RPtr(i, 1); }
    void SetValue(uint32_t i, T v) const { emu::HzScalar(); *WPtr(i, 1) = v; }
    T& operator()(uint32_t i) const { emu::HzScalar(); return *WPtr(i, 1); }
    uint32_t GetSize() const { return size_; }
    uint32_t GetLength() const { return size_ * sizeof(T); }
    void SetSize(uint32_t n) {
        if ((uint64_t)off_ + (uint64_t)n * sizeof(T) > emu::HwCapacity(Hw()))
            emu::Fail(5, emu::Str("SetSize(", n, ") runs past the end of ", emu::HwName(Hw())));
        size_ = n;
    }
    template <typename U> LocalTensor<U> ReinterpretCast() const {
        return LocalTensor<U>(pos_, off_, (uint32_t)((uint64_t)size_ * sizeof(T) / sizeof(U)));
    }
    uint64_t GetPhyAddr() const { return off_; }
    uint64_t GetPhyAddr(uint32_t off) const { return off_ + off * sizeof(T); }
    TPosition GetPosition() const { return pos_; }
    Hardware Hw() const { return emu::PosToHw(pos_); }
    uint32_t ByteOff() const { return off_; }
    // Emulation helpers: Ptr plus a read (RPtr) or write (WPtr) of [i, i+n) for the hazard tracker.
    const T* RPtr(uint32_t i, uint64_t n) const {
        const T* p = Ptr(i, n);
        emu::HzAccess(Hw(), off_ + (uint64_t)i * sizeof(T), n * sizeof(T), false);
        return p;
    }
    T* WPtr(uint32_t i, uint64_t n) const {
        T* p = Ptr(i, n);
        emu::HzAccess(Hw(), off_ + (uint64_t)i * sizeof(T), n * sizeof(T), true);
        return p;
    }
    // Emulation helper: checks ownership and that [i, i+n) lies inside the tensor, returns the host pointer.
    T* Ptr(uint32_t i, uint64_t n) const {
        if (!valid_()) emu::Fail(5, "LocalTensor used before it was allocated");
        uint8_t* base = emu::HwBase(Hw());
        if ((uint64_t)i + n > size_)
            emu::Fail(5, emu::Str("access to elements [", i, ", ", (uint64_t)i + n, ") of a ", emu::HwName(Hw()),
                                  " tensor holding ", size_, " elements"));
        return reinterpret_cast<T*>(base + off_) + i;
    }
  private:
    bool valid_() const { return pos_ != TPosition::MAX; }
    TPosition pos_ = TPosition::MAX;
    uint32_t off_ = 0;
    uint32_t size_ = 0;
};

namespace emu {
// Alignment checks: rule 1 for UB/L1, rule 2 for L0.
template <typename T> inline void CheckAlign(const LocalTensor<T>& t, const char* what, uint32_t l0Align = 512) {
    Hardware h = t.Hw();
    uint32_t a = t.ByteOff();
    if ((h == Hardware::UB || h == Hardware::L1) && a % 32)
        Fail(1, Str(what, ": ", HwName(h), " operand at byte address ", a, " is not 32-byte aligned"));
    if ((h == Hardware::L0A || h == Hardware::L0B) && a % 512)
        Fail(2, Str(what, ": ", HwName(h), " operand at byte address ", a, " is not 512-byte aligned"));
    if (h == Hardware::L0C && a % l0Align)
        Fail(2, Str(what, ": L0C operand at byte address ", a, " is not ", l0Align, "-byte aligned"));
}
template <typename T> inline void RequireHw(const LocalTensor<T>& t, Hardware h, const char* what) {
    if (t.Hw() != h) Fail(5, Str(what, ": operand lives in ", HwName(t.Hw()), ", expected ", HwName(h)));
}
template <typename T> inline void RequireUB(const LocalTensor<T>& t, const char* what) {
    if (t.Hw() != Hardware::UB) {
        HwBase(t.Hw());   // reports rule 7 first when the core type is wrong
        Fail(7, Str(what, " is a Vector instruction; its operand lives in ", HwName(t.Hw()), ", not UB"));
    }
    HwBase(Hardware::UB);
}
}  // namespace emu

// ---------------------------------------------------------------- TPipe / TQue / TBuf
class TPipe;
struct TQueBase {
    TPosition pos = TPosition::MAX;
    int num = 0;
    uint32_t len = 0;
    uint32_t base = 0;
};

template <TPosition POS, int32_t DEPTH = 1> class TQue : public TQueBase {
  public:
    enum State : uint8_t { FREE, ALLOCATED, ENQUEUED, DEQUEUED };
    template <typename T> LocalTensor<T> AllocTensor() {
        if (num == 0) emu::Fail(12, "AllocTensor on a TQue that was never InitBuffer'ed");
        for (int k = 0; k < num; ++k) {
            int s = (next_ + k) % num;
            if (state_[s] == FREE) {
                state_[s] = ALLOCATED;
                next_ = (s + 1) % num;
                uint8_t* p = emu::HwBase(emu::PosToHw(pos)) + base + s * len;
                std::memset(p, 0xFF, len);   // poison: a fresh tensor holds no data
                emu::HzClear(emu::PosToHw(pos), base + s * len, len);   // the queue freed the slot
                return LocalTensor<T>(pos, base + s * len, len / sizeof(T));
            }
        }
        emu::Fail(12, emu::Str("AllocTensor: all ", num, " buffers of the queue are in use (more AllocTensor than InitBuffer's num without FreeTensor)"));
    }
    template <typename T> bool EnQue(const LocalTensor<T>& t) {
        int s = Slot(t.ByteOff(), "EnQue");
        if (state_[s] != ALLOCATED) emu::Fail(12, "EnQue of a tensor that is not freshly allocated from this queue");
        if ((int)fifo_.size() >= DEPTH) emu::Fail(12, emu::Str("EnQue beyond the queue depth ", DEPTH));
        state_[s] = ENQUEUED;
        fifo_.push_back(s);
        return true;
    }
    template <typename T> LocalTensor<T> DeQue() {
        if (fifo_.empty()) emu::Fail(12, "DeQue on an empty queue (no EnQue before it)");
        int s = fifo_.front();
        fifo_.erase(fifo_.begin());
        state_[s] = DEQUEUED;
        QueueSync();
        return LocalTensor<T>(pos, base + s * len, len / sizeof(T));
    }
    template <typename T> void FreeTensor(LocalTensor<T>& t) {
        int s = Slot(t.ByteOff(), "FreeTensor");
        if (state_[s] == FREE || state_[s] == ENQUEUED)
            emu::Fail(12, "FreeTensor of a tensor this queue does not hold (already freed, or still enqueued)");
        state_[s] = FREE;
    }
    bool VacantInQue() const { return (int)fifo_.size() < DEPTH; }
    bool HasTensorInQue() const { return !fifo_.empty(); }
    ~TQue() {
        if (!emu::tl_core || !emu::CurLaunch() || emu::CurLaunch()->aborted || std::uncaught_exceptions() > 0) return;
        for (int s = 0; s < num; ++s)
            if (state_[s] != FREE) { emu::Warn(12, "a TQue buffer was never freed before kernel end"); break; }
    }
  private:
    friend class TPipe;
    // The flag pair TQue inserts between EnQue and DeQue, by position.
    void QueueSync() const {
        using namespace emu;
        switch (pos) {
            case TPosition::VECIN: HzSync(P_MTE2, P_V); HzSync(P_MTE2, P_S); break;
            case TPosition::VECOUT: HzSync(P_V, P_MTE3); HzSync(P_S, P_MTE3); break;
            case TPosition::A1: case TPosition::B1: HzSync(P_MTE2, P_MTE1); break;
            case TPosition::A2: case TPosition::B2: HzSync(P_MTE1, P_M); HzSync(P_MTE2, P_M); break;
            case TPosition::CO1: HzSync(P_M, P_FIX); break;
            default: break;
        }
    }
    int Slot(uint32_t off, const char* what) {
        if (off < base || off >= base + num * len || (off - base) % len)
            emu::Fail(12, emu::Str(what, ": the tensor does not belong to this queue"));
        return (off - base) / len;
    }
    State state_[8] = {};
    std::vector<int> fifo_;
    int next_ = 0;
};
template <TPosition SRC, TPosition DST, int32_t DEPTH = 1> class TQueBind : public TQue<SRC, DEPTH> {};

template <TPosition POS> class TBuf : public TQueBase {
  public:
    template <typename T> LocalTensor<T> Get() const { return Get<T>(len / sizeof(T)); }
    template <typename T> LocalTensor<T> Get(uint32_t n) const {
        if (num == 0) emu::Fail(12, "TBuf::Get on a TBuf that was never InitBuffer'ed");
        if (n * sizeof(T) > len) emu::Fail(5, emu::Str("TBuf::Get(", n, ") exceeds the buffer's ", len, " bytes"));
        return LocalTensor<T>(POS, base, n);
    }
    template <typename T> LocalTensor<T> GetWithOffset(uint32_t n, uint32_t offBytes) const {
        if (num == 0) emu::Fail(12, "TBuf::GetWithOffset on a TBuf that was never InitBuffer'ed");
        if (offBytes % 32) emu::Fail(1, emu::Str("GetWithOffset byte offset ", offBytes, " is not 32-byte aligned"));
        if (offBytes + (uint64_t)n * sizeof(T) > len)
            emu::Fail(5, emu::Str("GetWithOffset(", n, ", ", offBytes, ") runs past the TBuf's ", len, " bytes"));
        return LocalTensor<T>(POS, base + offBytes, n);
    }
};

class TPipe {
  public:
    TPipe() { for (auto& u : used_) u = 0; }
    template <class Q> void InitBuffer(Q& q, int32_t num, uint32_t lenBytes) {
        if (num < 1 || num > 8) emu::Fail(12, emu::Str("InitBuffer num ", num, " (1..8)"));
        Place(q, q.pos = QPos(q), num, lenBytes);
    }
    template <TPosition POS> void InitBuffer(TBuf<POS>& b, uint32_t lenBytes) { Place(b, b.pos = POS, 1, lenBytes); }
    void Destroy() {}   // TBuf tensors stay valid (tilelang-ascend relies on this)
    void Reset() { for (auto& u : used_) u = 0; }
    template <HardEvent E> int32_t AllocEventID() { return evNext_[(int)E]++ % 6; }
    template <HardEvent E> void ReleaseEventID(int32_t) {}
    template <HardEvent E> int32_t FetchEventID() { return evNext_[(int)E] % 6; }
  private:
    template <TPosition P, int32_t D> static TPosition QPos(TQue<P, D>&) { return P; }
    template <TPosition P, TPosition P2, int32_t D> static TPosition QPos(TQueBind<P, P2, D>&) { return P; }
    void Place(TQueBase& q, TPosition pos, int num, uint32_t lenBytes) {
        Hardware h = emu::PosToHw(pos);
        uint32_t len = (lenBytes + 31) / 32 * 32;
        uint64_t need = (uint64_t)used_[(int)h] + (uint64_t)num * len;
        if (need > emu::HwCapacity(h))
            emu::Fail(6, emu::Str("InitBuffer of ", num, " x ", len, " bytes in ", emu::HwName(h), " needs ", need,
                                  " bytes in total; the buffer holds ", emu::HwCapacity(h)));
        q.num = num; q.len = len; q.base = used_[(int)h];
        used_[(int)h] = (uint32_t)need;
    }
    uint32_t used_[(int)Hardware::MAX];
    int32_t evNext_[(int)HardEvent::MAX] = {};
};

}  // namespace AscendC
