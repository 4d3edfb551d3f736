//! Closed sets of states that are stored in the index as text and shown by the admin API:
//! one declaration gives the enum its stored name, parsing, `Display`, serde and SQLite
//! conversions, so no code compares these states as strings.

/// `stored_enum! { /// doc  pub enum Name { /// doc  Variant = "stored", ... } }`
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $stored:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name stored in the index and shown by the API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $stored ),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::stored_enum::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $stored => Ok($name::$variant), )+
                    other => Err($crate::stored_enum::UnknownName {
                        what: stringify!($name),
                        got: other.to_string(),
                        expected: &[$($stored),+],
                    }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

pub(crate) use stored_enum;

/// A stored name this version does not know (an index written by a newer node, or a typo
/// in a request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {got:?} (expected one of: {})", expected.join(", "))]
pub struct UnknownName {
    /// The type asked for.
    pub what: &'static str,
    /// What was found.
    pub got: String,
    /// The names that exist.
    pub expected: &'static [&'static str],
}

#[cfg(test)]
mod tests {
    stored_enum! {
        /// A test set.
        pub enum Colour {
            /// Red.
            Red = "red",
            /// Dark blue.
            DarkBlue = "dark blue",
        }
    }

    #[test]
    fn names_round_trip_through_text_serde_and_sqlite() {
        for c in Colour::ALL {
            assert_eq!(c.as_str().parse::<Colour>().unwrap(), *c);
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(serde_json::from_str::<Colour>(&json).unwrap(), *c);
        }
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let back: Colour = conn
            .query_row("SELECT ?1", [Colour::DarkBlue], |r| r.get(0))
            .unwrap();
        assert_eq!(back, Colour::DarkBlue);
        let err = "green".parse::<Colour>().unwrap_err().to_string();
        assert!(
            err.contains("\"green\"") && err.contains("red, dark blue"),
            "{err}"
        );
        let err = conn
            .query_row("SELECT 'green'", [], |r| r.get::<_, Colour>(0))
            .unwrap_err();
        assert!(err.to_string().contains("green"), "{err}");
    }
}
