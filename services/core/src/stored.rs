//! Enums kept in the database as text and sent as protobuf values: one macro writes the
//! three conversions, so a new value is one line and the forms cannot drift apart.

/// A stored value that is not one this version knows: the database was written by something
/// else. Reported as an internal error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown stored {kind} value")]
pub struct UnknownStoredValue {
    /// What kind of value, e.g. `service type`.
    pub kind: &'static str,
}

/// Writes `as_stored` / `from_stored` (and, given a protobuf enum, `to_proto` / `from_proto`)
/// for a plain enum:
///
/// ```ignore
/// stored_enum!(Basis, "proxy basis", pb::ProxyBasis, {
///     GrantedByPatient => "granted_by_patient", GrantedByPatient;
///     PaperForm => "paper_form", PaperForm;
/// });
/// stored_enum!(Action, "access log action", {
///     ReadAppointments => "appointments.read";
/// });
/// ```
#[macro_export]
macro_rules! stored_enum {
    ($name:ident, $kind:literal, { $($variant:ident => $stored:literal;)+ }) => {
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The form kept in the database.
            pub fn as_stored(self) -> &'static str {
                match self { $($name::$variant => $stored,)+ }
            }

            /// Reads the form kept in the database.
            pub fn from_stored(
                text: &str,
            ) -> Result<Self, $crate::stored::UnknownStoredValue> {
                match text {
                    $($stored => Ok($name::$variant),)+
                    _ => Err($crate::stored::UnknownStoredValue { kind: $kind }),
                }
            }
        }
    };
    ($name:ident, $kind:literal, $proto:ty, { $($variant:ident => $stored:literal, $pb:ident;)+ }) => {
        $crate::stored_enum!($name, $kind, { $($variant => $stored;)+ });

        impl $name {
            /// The protobuf value.
            pub fn to_proto(self) -> $proto {
                match self { $($name::$variant => <$proto>::$pb,)+ }
            }

            /// Reads a protobuf value; unspecified and unknown numbers are refused.
            pub fn from_proto(value: i32) -> Result<Self, &'static str> {
                match <$proto>::try_from(value) {
                    $(Ok(<$proto>::$pb) => Ok($name::$variant),)+
                    Ok(_) => Err("is required"),
                    Err(_) => Err("is not a known value"),
                }
            }
        }
    };
}
