//! Byte fields encoded as bytes: postcard then copies them whole instead of
//! making a call per byte, and encodes them exactly as before (a length,
//! then the bytes), so stored records read the same either way.

use serde::{Deserialize, Deserializer, Serializer};

/// `#[serde(with = "fieldhook_core::bytes::pairs")]` for header lists:
/// names as text, values as bytes.
pub mod pairs {
    use super::*;

    /// Serializes `(name, value)` pairs, each value as bytes.
    pub fn serialize<S: Serializer>(pairs: &[(String, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            pairs
                .iter()
                .map(|(name, value)| (name, serde_bytes::Bytes::new(value))),
        )
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, Vec<u8>)>, D::Error> {
        let pairs: Vec<(String, serde_bytes::ByteBuf)> = Deserialize::deserialize(d)?;
        Ok(pairs.into_iter().map(|(n, v)| (n, v.into_vec())).collect())
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Plain {
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct AsBytes {
        #[serde(with = "super::pairs")]
        headers: Vec<(String, Vec<u8>)>,
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    }

    #[test]
    fn byte_fields_encode_as_they_did_as_sequences_of_numbers() {
        let headers = vec![("content-type".to_owned(), b"application/json".to_vec())];
        let body = b"{\"event\":\"job.completed\"}".to_vec();
        let plain = postcard::to_stdvec(&Plain {
            headers: headers.clone(),
            body: body.clone(),
        })
        .unwrap();
        let bytes = postcard::to_stdvec(&AsBytes {
            headers: headers.clone(),
            body: body.clone(),
        })
        .unwrap();
        assert_eq!(plain, bytes);
        let back: AsBytes = postcard::from_bytes(&plain).unwrap();
        assert_eq!(back, AsBytes { headers, body });
    }
}
