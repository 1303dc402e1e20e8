//! Generates server and client code for every contract under `homecare/`, with a vendored
//! protoc so that a fresh machine needs nothing installed.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "google/type/date.proto",
    "homecare/common/v1/common.proto",
    "homecare/appointments/v1/appointments.proto",
    "homecare/patients/v1/patients.proto",
    "homecare/notifications/v1/notifications.proto",
    "homecare/messaging/v1/messaging.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    let well_known = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure()
        // Written by hand (src/encoded.rs), so a server can send visits it encoded once.
        .extern_path(
            ".homecare.appointments.v1.ListAppointmentsResponse",
            "crate::encoded::ListAppointmentsResponse",
        )
        .extern_path(".google.type.Date", "crate::google::Date")
        // Server reflection serves this set, so grpcurl and buf curl need no .proto files.
        .file_descriptor_set_path(out_dir.join("homecare_descriptor.bin"))
        .compile_with_config(
            config,
            &PROTOS.iter().map(PathBuf::from).collect::<Vec<_>>(),
            &[PathBuf::from("."), well_known],
        )?;

    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
