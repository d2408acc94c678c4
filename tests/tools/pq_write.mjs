// Writes parquet files with an independent writer (parquet-wasm, the Rust
// arrow-rs writer compiled to WebAssembly, from npm) for test_parquet.py:
// every supported codec x data page v1/v2 x dictionary on/off, files that
// use features the reader must refuse, and expected.json with every value.
// With URL_BASE, also urls.parquet: 30 rows of URL_BASE/img/N.jpg (every
// 7th null), a caption, DataComp's list<list<float64>> face_bboxes (which
// the reader must step over), a score, an int64 beyond 2^53, a BINARY
// column of bytes that are not UTF-8 and uint64/uint32 columns above the
// signed ranges, in row groups of 10, for the urls source.
// Usage: node pq_write.mjs NODE_MODULES_DIR OUT_DIR [URL_BASE]
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [modules, out, urlBase] = process.argv.slice(2);
const require = createRequire(join(modules, 'x.js'));
const arrow = require('apache-arrow');
const pq = require('parquet-wasm/node');

const N = Number(process.env.PQ_ROWS || 2500); // PQ_ROWS: small files for the fuzz corpus
const url = [], caption = [], sim = [], width = [], id = [], flag = [], score = [];
let seed = 12345;
const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
for (let i = 0; i < N; i++) {
  // Few distinct captions so dictionaries matter; some nulls in optional columns.
  url.push(i % 17 === 3 ? null : `https://img${i % 7}.example.com/p/${i}.jpg?q=${Math.floor(rnd() * 1e6)}`);
  caption.push(i % 11 === 5 ? null : ['a cat', 'ein Hund — 犬', '', 'x'.repeat(300)][i % 4] + ` #${i % 50}`);
  sim.push(i % 13 === 0 ? null : rnd() * 2 - 1);
  width.push(i % 9 === 0 ? null : Math.floor(rnd() * 4096) - 100);
  id.push(BigInt(i) * 1000000007n - 5000000000000n);
  flag.push(i % 7 === 0 ? null : rnd() < 0.5);
  score.push(Math.fround(rnd() * 100));
}
const f = (name, type, nullable = true) => new arrow.Field(name, type, nullable);
const schema = new arrow.Schema([
  f('URL', new arrow.Utf8()), f('TEXT', new arrow.Utf8()), f('similarity', new arrow.Float64()),
  f('width', new arrow.Int32()), f('id', new arrow.Int64(), false), f('flag', new arrow.Bool()),
  f('score', new arrow.Float32(), false),
]);
const cols = { URL: url, TEXT: caption, similarity: sim, width, id, flag, score };
const vec = (fld) => arrow.vectorFromArray(cols[fld.name], fld.type);
const batch = new arrow.RecordBatch(schema, arrow.makeData({
  type: new arrow.Struct(schema.fields), length: N, nullCount: 0,
  children: schema.fields.map((fld) => vec(fld).data[0]),
}));
const table = new arrow.Table(schema, [batch]);
const wasmTable = () => pq.Table.fromIPCStream(arrow.tableToIPC(table, 'stream'));

function write(name, { codec, v2 = false, dict = true, plain = true, rowGroup = 1000, page = 4096 }) {
  let b = new pq.WriterPropertiesBuilder()
    .setCompression(codec)
    .setWriterVersion(v2 ? pq.WriterVersion.V2 : pq.WriterVersion.V1)
    .setDictionaryEnabled(dict)
    .setMaxRowGroupSize(rowGroup)
    .setDataPageSizeLimit(page)
    .setWriteBatchSize(128);
  if (plain)
    b = b.setEncoding(pq.Encoding.PLAIN);
  writeFileSync(join(out, name), pq.writeParquet(wasmTable(), b.build()));
}

const C = pq.Compression;
const ok = [];
for (const [cname, codec] of [['none', C.UNCOMPRESSED], ['snappy', C.SNAPPY], ['gzip', C.GZIP], ['zstd', C.ZSTD]])
  for (const v2 of [false, true])
    for (const dict of [true, false]) {
      const name = `ok-${cname}-${v2 ? 'v2' : 'v1'}-${dict ? 'dict' : 'plain'}.parquet`;
      write(name, { codec, v2, dict });
      ok.push(name);
    }
// One row group, large pages: the reader's row-group crossing is not needed.
write('ok-onegroup.parquet', { codec: C.SNAPPY, rowGroup: 1000000, page: 1 << 20 });
ok.push('ok-onegroup.parquet');
// v2 without a dictionary and without forcing PLAIN: arrow-rs falls back to
// the DELTA encodings, which the reader refuses by name.
write('refuse-delta.parquet', { codec: C.UNCOMPRESSED, v2: true, dict: false, plain: false });
write('refuse-brotli.parquet', { codec: C.BROTLI });
write('refuse-lz4.parquet', { codec: C.LZ4_RAW });

if (urlBase) {
  const n = 30;
  const u = [], t = [], sc = [], h = [], fb = [], raw = [], u64 = [], u32 = [];
  for (let i = 0; i < n; i++) {
    u.push(i % 7 === 3 ? null : `${urlBase}/img/${i}.jpg`);
    t.push(`caption ${i} — ${'ab'.repeat(i)}`);
    sc.push(i / 8);
    fb.push(i % 3 ? [] : [[0.1, 0.2, 0.3, i / 10], [0.5, 0.5, 0.9, 0.9]]);
    raw.push(i % 2 ? new Uint8Array([0xff, 0, i]) : new TextEncoder().encode(`ok ${i}`));
    u64.push(18446744073709551615n - BigInt(i % 6) * 3000000000000000000n);
    u32.push(4294967295 - i);
    h.push((i % 2 ? 1n : -1n) * (9223372036854775000n - BigInt(i))); // beyond a double's 2^53
  }
  const bboxes = new arrow.List(f('item', new arrow.List(f('item', new arrow.Float64()))));
  const us = new arrow.Schema([f('URL', new arrow.Utf8()), f('TEXT', new arrow.Utf8()),
                               f('face_bboxes', bboxes), f('similarity', new arrow.Float64()),
                               f('hash', new arrow.Int64()), f('raw', new arrow.Binary()),
                               f('u64', new arrow.Uint64()), f('u32', new arrow.Uint32())]);
  const uc = { URL: u, TEXT: t, face_bboxes: fb, similarity: sc, hash: h, raw, u64, u32 };
  const ub = new arrow.RecordBatch(us, arrow.makeData({
    type: new arrow.Struct(us.fields), length: n, nullCount: 0,
    children: us.fields.map((fld) => arrow.vectorFromArray(uc[fld.name], fld.type).data[0]),
  }));
  const ut = pq.Table.fromIPCStream(arrow.tableToIPC(new arrow.Table(us, [ub]), 'stream'));
  const props = new pq.WriterPropertiesBuilder().setCompression(C.SNAPPY)
    .setWriterVersion(pq.WriterVersion.V2).setMaxRowGroupSize(10).build();
  writeFileSync(join(out, 'urls.parquet'), pq.writeParquet(ut, props));
  writeFileSync(join(out, 'urls.json'),
                JSON.stringify({ URL: u, TEXT: t, similarity: sc, hash: h.map(String),
                                 raw: raw.map((b) => Buffer.from(b).toString('hex')),
                                 u64: u64.map(String), u32 }));
}

const rows = [];
for (let i = 0; i < N; i++)
  rows.push({ URL: url[i], TEXT: caption[i], similarity: sim[i], width: width[i], id: id[i].toString(),
              flag: flag[i], score: score[i] });
writeFileSync(join(out, 'expected.json'), JSON.stringify({
  ok, refuse: { 'refuse-delta.parquet': 'DELTA_', 'refuse-brotli.parquet': 'BROTLI', 'refuse-lz4.parquet': 'LZ4_RAW' },
  columns: schema.fields.map((x) => x.name), rows,
}));
