// Package token embeds obol's development stablecoin ObolUSD: its Solidity
// source and the ABI and creation bytecode compiled from it by
// `make contracts` (npm solc, pinned in hack/contracts/package.json). The
// artifacts are committed so ordinary builds need no Node.js;
// `make contracts-check` fails when they differ from a fresh compile.
//
// Code should use internal/token, which parses these.
package token

import _ "embed"

// Source is the Solidity source of ObolUSD.
//
//go:embed ObolUSD.sol
var Source string

// ABIJSON is the contract's JSON ABI as solc wrote it.
//
//go:embed ObolUSD.abi.json
var ABIJSON []byte

// BinHex is the creation bytecode as hex (no 0x prefix, trailing newline).
//
//go:embed ObolUSD.bin
var BinHex string
