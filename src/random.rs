//! Random bytes from the OS (salts, nonces, signing keys, replica set ids).

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the OS random source");
    buf
}
