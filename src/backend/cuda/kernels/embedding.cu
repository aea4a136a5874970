// Embedding lookup and its gradient. ids are int32 or int64; table is [tableRows, dim].
//
//   forward:  out[i, :] = table[ids[i], :]
//   backward: dtable[ids[i], :] += dy[i, :]   (float32 atomics; repeated ids accumulate in any order)
//
// An id outside [0, tableRows) writes nothing and reports STATUS_EMBEDDING_ID, which the host turns into an
// error at its next synchronisation.

extern "C" __global__ void embedding_forward(const void* ids, int idsDt, const void* table, int tableDt, void* out, int outDt,
                                             i64 count, i64 dim, i64 tableRows, volatile int* status) {
  const bool same = tableDt == outDt;
  GRID_STRIDE(e, count * dim) {
    const i64 i = e / dim;
    const i64 j = e - i * dim;
    const i64 id = load_index(ids, idsDt, i);
    if (id < 0 || id >= tableRows) {
      if (j == 0) report_status(status, STATUS_EMBEDDING_ID, (int)id, (int)tableRows, 0);
      continue;
    }
    const i64 src = id * dim + j;
    if (same && tableDt == DT_F32) ((float*)out)[e] = ((const float*)table)[src];
    else if (same && (tableDt == DT_BF16 || tableDt == DT_F16)) ((u16*)out)[e] = ((const u16*)table)[src];
    else store_d(out, outDt, e, load_d(table, tableDt, src));
  }
}

extern "C" __global__ void embedding_backward(const void* ids, int idsDt, const void* dy, int dyDt, float* dtable, i64 count, i64 dim, i64 tableRows) {
  GRID_STRIDE(e, count * dim) {
    const i64 i = e / dim;
    const i64 id = load_index(ids, idsDt, i);
    if (id < 0 || id >= tableRows) continue;
    atomicAdd(dtable + id * dim + (e - i * dim), load_f(dy, dyDt, e));
  }
}
