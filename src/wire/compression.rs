//! OP_COMPRESSED's compressors: snappy, zlib and zstd, through their crates.

use super::ParseError;
use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compressor {
    Noop,
    Snappy,
    Zlib,
    Zstd,
}

/// One OP_COMPRESSED frame's body size before and after compression, for the
/// per-compressor byte counters in serverStatus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressedSizes {
    pub compressor: Compressor,
    /// The original message without its header.
    pub uncompressed: usize,
    /// The compressed bytes after OP_COMPRESSED's own 9-byte preamble.
    pub compressed: usize,
}

/// mongod's default zlib level (`zlibCompressionLevel`).
const ZLIB_LEVEL: u32 = 6;
/// zstd's own default level, which mongod uses.
const ZSTD_LEVEL: i32 = 3;

impl Compressor {
    pub fn id(self) -> u8 {
        match self {
            Compressor::Noop => 0,
            Compressor::Snappy => 1,
            Compressor::Zlib => 2,
            Compressor::Zstd => 3,
        }
    }

    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Compressor::Noop,
            1 => Compressor::Snappy,
            2 => Compressor::Zlib,
            3 => Compressor::Zstd,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Compressor::Noop => "noop",
            Compressor::Snappy => "snappy",
            Compressor::Zlib => "zlib",
            Compressor::Zstd => "zstd",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Noop, Self::Snappy, Self::Zlib, Self::Zstd]
            .into_iter()
            .find(|c| c.name() == name)
    }

    pub fn compress(self, input: &[u8]) -> Vec<u8> {
        match self {
            Compressor::Noop => input.to_vec(),
            Compressor::Snappy => snap::raw::Encoder::new()
                .compress_vec(input)
                .expect("snappy accepts any input below 4 GiB"),
            Compressor::Zlib => {
                use flate2::{write::ZlibEncoder, Compression};
                use std::io::Write;
                let mut enc = ZlibEncoder::new(Vec::new(), Compression::new(ZLIB_LEVEL));
                enc.write_all(input).expect("writing to a Vec");
                enc.finish().expect("writing to a Vec")
            }
            Compressor::Zstd => zstd::bulk::compress(input, ZSTD_LEVEL).expect("zstd compress"),
        }
    }

    /// Decompresses `input`, which must expand to exactly `expected` bytes. Never produces
    /// more than `expected` bytes, so a small message cannot expand into a large allocation.
    pub fn decompress(self, input: &[u8], expected: usize) -> Result<Vec<u8>, ParseError> {
        let wrong_size = |got: usize| {
            ParseError::Decompression(format!(
                "uncompressedSize is {expected} but the data expands to {got} bytes"
            ))
        };
        let out = match self {
            Compressor::Noop => input.to_vec(),
            Compressor::Snappy => {
                let claimed = snap::raw::decompress_len(input)
                    .map_err(|e| ParseError::Decompression(e.to_string()))?;
                if claimed != expected {
                    return Err(wrong_size(claimed));
                }
                snap::raw::Decoder::new()
                    .decompress_vec(input)
                    .map_err(|e| ParseError::Decompression(e.to_string()))?
            }
            Compressor::Zlib => read_bounded(flate2::read::ZlibDecoder::new(input), expected)?,
            Compressor::Zstd => {
                let decoder = zstd::stream::read::Decoder::with_buffer(input)
                    .map_err(|e| ParseError::Decompression(e.to_string()))?;
                read_bounded(decoder, expected)?
            }
        };
        if out.len() != expected {
            return Err(wrong_size(out.len()));
        }
        Ok(out)
    }
}

/// Reads at most `expected + 1` bytes: one more than allowed is enough to know it is too many.
fn read_bounded(reader: impl Read, expected: usize) -> Result<Vec<u8>, ParseError> {
    let mut out = Vec::with_capacity(expected.min(1 << 20));
    reader
        .take(expected as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ParseError::Decompression(e.to_string()))?;
    Ok(out)
}
