//! Generated gRPC contracts of homecare.
//!
//! One module per versioned proto package, e.g. [`appointments::v1`] for
//! `homecare.appointments.v1`.

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

mod encoded;

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
