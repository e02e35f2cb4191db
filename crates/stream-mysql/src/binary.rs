//! A bounds-checked reader over event bytes: every read names what it was reading when the
//! event is shorter than it should be.

/// A truncated or malformed event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Malformed(pub(crate) String);

pub(crate) type Result<T> = std::result::Result<T, Malformed>;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let r = &self.buf[self.pos..];
        self.pos = self.buf.len();
        r
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(Malformed(format!(
                "event ends {} bytes into {what}, which needs {n}",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    /// Little-endian unsigned integer of `n` bytes (n <= 8).
    #[inline]
    pub(crate) fn uint_le(&mut self, n: usize, what: &str) -> Result<u64> {
        let b = self.take(n, what)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    /// Big-endian unsigned integer of `n` bytes (n <= 8).
    #[inline]
    pub(crate) fn uint_be(&mut self, n: usize, what: &str) -> Result<u64> {
        let b = self.take(n, what)?;
        Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    /// MySQL length-encoded integer.
    pub(crate) fn lenenc(&mut self, what: &str) -> Result<u64> {
        match self.u8(what)? {
            n @ 0..=250 => Ok(u64::from(n)),
            0xfc => self.uint_le(2, what),
            0xfd => self.uint_le(3, what),
            0xfe => self.uint_le(8, what),
            other => Err(Malformed(format!("bad length prefix {other:#x} in {what}"))),
        }
    }

    /// A length-encoded byte string.
    pub(crate) fn lenenc_bytes(&mut self, what: &str) -> Result<&'a [u8]> {
        let n = self.lenenc(what)?;
        let n = usize::try_from(n).map_err(|_| Malformed(format!("{what} is too long")))?;
        self.take(n, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_integers_in_both_byte_orders_and_reports_truncation() {
        let mut r = Reader::new(&[0x01, 0x02, 0x03, 0xfc, 0x10, 0x27, 0xff]);
        assert_eq!(r.uint_le(2, "a").expect("le"), 0x0201);
        let mut b = Reader::new(&[0x01, 0x02, 0x03]);
        assert_eq!(b.uint_be(3, "b").expect("be"), 0x010203);
        assert_eq!(r.u8("c").expect("u8"), 3);
        assert_eq!(r.lenenc("d").expect("lenenc"), 10_000);
        let err = r.take(2, "the column value").expect_err("short");
        assert!(err.0.contains("the column value"), "{err}");
    }
}
