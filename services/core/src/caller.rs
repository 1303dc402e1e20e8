//! The authenticated caller of an RPC, as the server's authentication layer verified it.
//!
//! The server puts a [`Caller`] into each request's extensions after checking the token;
//! services read it with [`Caller::from_request`] and never look at raw metadata.

use crate::identity::NationalIdentityNumber;
use crate::status;

/// The role of the system account the EPJ integration uses.
pub const EPJ_INTEGRATION_ROLE: &str = "epj-integration";

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A citizen logged in at the high assurance level: a patient or a relative.
    Citizen {
        /// The person's national identity number, from the token's `pid` claim.
        pid: NationalIdentityNumber,
    },
    /// Home-care staff, or a system account such as the EPJ integration.
    Staff(StaffCaller),
}

/// A staff member or system account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffCaller {
    /// The stable subject id from the staff identity provider. Not personal data.
    pub subject: String,
    /// The staff member's name from the token, when it carries one; shown to patients in
    /// their access log.
    pub name: Option<String>,
    /// Roles granted by the identity provider.
    pub roles: Vec<String>,
    /// The care units the staff member works in.
    pub care_units: Vec<crate::identifier::CareUnitId>,
}

impl StaffCaller {
    /// Whether the identity provider granted `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|granted| granted == role)
    }

    /// Whether the staff member works in `care_unit`.
    pub fn works_in(&self, care_unit: &str) -> bool {
        self.care_units.iter().any(|unit| unit == care_unit)
    }
}

impl Caller {
    /// The caller the authentication layer attached to `request`.
    ///
    /// A request without one never passed authentication; that is a wiring bug, answered as
    /// UNAUTHENTICATED rather than trusted.
    pub fn from_request<T>(request: &tonic::Request<T>) -> Result<&Caller, tonic::Status> {
        request
            .extensions()
            .get::<Caller>()
            .ok_or_else(|| status::unauthenticated("MISSING_CREDENTIALS", "no verified caller"))
    }

    /// The citizen's identity number; staff are refused.
    pub fn require_citizen(&self) -> Result<&NationalIdentityNumber, CallerError> {
        match self {
            Caller::Citizen { pid } => Ok(pid),
            Caller::Staff(_) => Err(CallerError::CitizenOnly),
        }
    }

    /// The staff member; a citizen is refused.
    pub fn require_staff(&self) -> Result<&StaffCaller, CallerError> {
        match self {
            Caller::Staff(staff) => Ok(staff),
            Caller::Citizen { .. } => Err(CallerError::StaffOnly),
        }
    }

    /// The staff member if they hold `role`.
    pub fn require_staff_role(&self, role: &'static str) -> Result<&StaffCaller, CallerError> {
        let staff = self.require_staff()?;
        if staff.has_role(role) {
            Ok(staff)
        } else {
            Err(CallerError::RoleRequired(role))
        }
    }
}

/// Why a caller of the wrong kind is refused (PERMISSION_DENIED on the wire).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    /// Staff called what only citizens may.
    #[error("this call is for citizens")]
    CitizenOnly,
    /// A citizen called what only staff may.
    #[error("this call is for home-care staff")]
    StaffOnly,
    /// Staff without the role the call needs.
    #[error("this call needs the role {0}")]
    RoleRequired(&'static str),
}

impl From<CallerError> for tonic::Status {
    fn from(error: CallerError) -> tonic::Status {
        let reason = match error {
            CallerError::CitizenOnly => "CITIZEN_ONLY",
            CallerError::StaffOnly => "STAFF_ONLY",
            CallerError::RoleRequired(_) => "ROLE_REQUIRED",
        };
        status::permission_denied(reason, &error.to_string())
    }
}
