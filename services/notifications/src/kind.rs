//! The vocabulary of notices: what a notice is about, its channel, where it stands.

use homecare_proto::notifications::v1 as pb;

/// What a notice tells of. Adding one is a variant here, its line below, a template per
/// language (`templates/<language>/<kind>.hbs`), and the event that causes it in
/// [`crate::plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// The EPJ sent the visit as carried out.
    VisitCompleted,
    /// The care service moved the visit's window.
    VisitChanged,
    /// The care service cancelled the visit.
    VisitCancelled,
    /// A visit was added that starts soon.
    VisitAdded,
    /// The EPJ registered the recipient's cancellation.
    CancellationConfirmed,
    /// The cancellation could not be registered: the visit goes ahead.
    CancellationFailed,
    /// A proxy was granted to (or registered for) the recipient.
    ProxyGranted,
    /// The recipient's proxy was changed.
    ProxyChanged,
    /// A proxy was ended (told to the holder, and to the patient when staff ended it).
    ProxyEnded,
    /// Staff registered a proxy for the patient (told to the patient).
    ProxyRegistered,
    /// The care service answered a message thread.
    MessageReply,
    /// The care service received the recipient's message (a receipt, by e-mail only).
    MessageReceived,
}

/// What a notice is about, as a merged notice names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Visits and cancellations.
    Visits,
    /// Proxies.
    Proxies,
    /// Messages: answers and receipts.
    Messages,
}

impl NoticeKind {
    /// What it is about.
    pub fn topic(self) -> Topic {
        match self {
            NoticeKind::VisitCompleted
            | NoticeKind::VisitChanged
            | NoticeKind::VisitCancelled
            | NoticeKind::VisitAdded
            | NoticeKind::CancellationConfirmed
            | NoticeKind::CancellationFailed => Topic::Visits,
            NoticeKind::ProxyGranted
            | NoticeKind::ProxyChanged
            | NoticeKind::ProxyEnded
            | NoticeKind::ProxyRegistered => Topic::Proxies,
            NoticeKind::MessageReply | NoticeKind::MessageReceived => Topic::Messages,
        }
    }
}

homecare_core::stored_enum!(NoticeKind, "notice kind", pb::NoticeKind, {
    VisitCompleted => "visit_completed", VisitCompleted;
    VisitChanged => "visit_changed", VisitChanged;
    VisitCancelled => "visit_cancelled", VisitCancelled;
    VisitAdded => "visit_added", VisitAdded;
    CancellationConfirmed => "cancellation_confirmed", CancellationConfirmed;
    CancellationFailed => "cancellation_failed", CancellationFailed;
    ProxyGranted => "proxy_granted", ProxyGranted;
    ProxyChanged => "proxy_changed", ProxyChanged;
    ProxyEnded => "proxy_ended", ProxyEnded;
    ProxyRegistered => "proxy_registered", ProxyRegistered;
    MessageReply => "message_reply", MessageReply;
    MessageReceived => "message_received", MessageReceived;
});

/// How a notice travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A text message.
    Sms,
    /// An e-mail.
    Email,
}

homecare_core::stored_enum!(Channel, "notice channel", pb::Channel, {
    Sms => "sms", Sms;
    Email => "email", Email;
});

impl Channel {
    /// [`Channel::as_stored`] where a constant is needed (a sink's partition).
    pub const fn as_stored_const(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }
}

/// Where a notice stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeStatus {
    /// Waiting to be sent.
    Queued,
    /// The provider took it.
    Sent,
    /// The provider reports it delivered.
    Delivered,
    /// The provider reports it could not be delivered.
    Undelivered,
    /// Refused or given up; staff may retry.
    Failed,
    /// Not sent, for a [`SkipReason`].
    Skipped,
}

homecare_core::stored_enum!(NoticeStatus, "notice status", pb::NoticeStatus, {
    Queued => "queued", Queued;
    Sent => "sent", Sent;
    Delivered => "delivered", Delivered;
    Undelivered => "undelivered", Undelivered;
    Failed => "failed", Failed;
    Skipped => "skipped", Skipped;
});

/// Why a notice was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// No contact for the chosen channel, or no settings at all.
    NoContact,
    /// The recipient chose no notices.
    OptedOut,
}

homecare_core::stored_enum!(SkipReason, "skip reason", pb::SkipReason, {
    NoContact => "no_contact", NoContact;
    OptedOut => "opted_out", OptedOut;
});
