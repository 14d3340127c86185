#!/usr/bin/env node
// Compiles the Solidity sources under embed/token with the solc version pinned
// in package.json and writes <Name>.abi.json and <Name>.bin next to them (or
// into the directory given as the first argument, which contracts-check uses).
//
// The output is deterministic: fixed optimizer settings and EVM version, no
// metadata hash and no CBOR metadata appended to the bytecode, so the same
// source always yields byte-identical artifacts.
//
//   node compile.js            # writes into ../../embed/token
//   node compile.js /tmp/out   # writes into /tmp/out
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const pinned = require('./package.json').devDependencies.solc;
const srcDir = path.resolve(__dirname, '..', '..', 'embed', 'token');
const outDir = path.resolve(process.argv[2] || srcDir);
const contracts = ['ObolUSD'];

if (!solc.version().startsWith(pinned + '+')) {
  console.error(`solc ${solc.version()} is installed but package.json pins ${pinned}; run: make contracts`);
  process.exit(1);
}

const input = {
  language: 'Solidity',
  sources: {},
  settings: {
    evmVersion: 'cancun',
    optimizer: { enabled: true, runs: 200 },
    metadata: { bytecodeHash: 'none', appendCBOR: false },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};
for (const name of contracts) {
  const file = `${name}.sol`;
  input.sources[file] = { content: fs.readFileSync(path.join(srcDir, file), 'utf8') };
}

const output = JSON.parse(solc.compile(JSON.stringify(input)));
let failed = false;
for (const e of output.errors || []) {
  console.error(e.formattedMessage || e.message);
  if (e.severity === 'error') failed = true;
}
if (failed) {
  process.exit(1);
}

fs.mkdirSync(outDir, { recursive: true });
for (const name of contracts) {
  const c = output.contracts[`${name}.sol`][name];
  const bin = c.evm.bytecode.object;
  if (!bin) {
    console.error(`${name}: empty bytecode`);
    process.exit(1);
  }
  fs.writeFileSync(path.join(outDir, `${name}.abi.json`), JSON.stringify(c.abi, null, 2) + '\n');
  fs.writeFileSync(path.join(outDir, `${name}.bin`), bin + '\n');
  console.log(`${name}: ${bin.length / 2} bytes of creation code, ${c.abi.length} ABI entries -> ${outDir} (solc ${solc.version()})`);
}
