//! Generated gRPC contracts of homecare.
//!
//! One module per versioned proto package, e.g. [`appointments::v1`] for
//! `homecare.appointments.v1`.

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

mod encoded;

/// `google.type`: the calendar date of googleapis (`google/type/date.proto`, vendored).
pub mod google {
    pub use r#type::Date;

    pub mod r#type {
        /// A calendar date: year, month (1-12) and day (1-31). Written by hand, as the
        /// generated code would be, because this crate's modules are not nested by package.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, ::prost::Message)]
        pub struct Date {
            #[prost(int32, tag = "1")]
            pub year: i32,
            #[prost(int32, tag = "2")]
            pub month: i32,
            #[prost(int32, tag = "3")]
            pub day: i32,
        }
    }
}

/// `homecare.common.v1`: the vocabulary every contract shares.
pub mod common {
    pub mod v1 {
        tonic::include_proto!("homecare.common.v1");
    }
}

/// `homecare.appointments.v1`
pub mod appointments {
    pub mod v1 {
        tonic::include_proto!("homecare.appointments.v1");
        // Its own until homecare.common.v1 took it over, unchanged on the wire.
        pub use super::super::common::v1::ActorKind;
        pub use crate::encoded::{EncodedAppointment, ListAppointmentsResponse};
    }
}

/// `homecare.patients.v1`
pub mod patients {
    pub mod v1 {
        tonic::include_proto!("homecare.patients.v1");
    }
}

/// `homecare.notifications.v1`
pub mod notifications {
    pub mod v1 {
        tonic::include_proto!("homecare.notifications.v1");
    }
}

/// `homecare.messaging.v1`
pub mod messaging {
    pub mod v1 {
        tonic::include_proto!("homecare.messaging.v1");
    }
}

/// The encoded descriptors of every homecare contract, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("homecare_descriptor");
