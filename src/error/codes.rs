//! MongoDB's error codes, as numbered and named in the server's `error_codes.yml`.
//! Only the codes ferrod can return are listed; this is the one place numbers live.

macro_rules! codes {
    ($($name:ident = $num:expr),* $(,)?) => {
        /// A MongoDB error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types)]
        pub enum Code { $($name),* }

        impl Code {
            pub const fn number(self) -> i32 {
                match self { $(Code::$name => $num),* }
            }
            pub const fn name(self) -> &'static str {
                match self { $(Code::$name => stringify!($name)),* }
            }
            /// Looks a code up by number; unknown numbers have no name.
            pub fn from_number(n: i32) -> Option<Code> {
                match n { $($num => Some(Code::$name),)* _ => None }
            }
        }
    };
}

codes! {
    InternalError = 1,
    BadValue = 2,
    NoSuchKey = 4,
    GraphContainsCycle = 5,
    HostUnreachable = 6,
    HostNotFound = 7,
    UnknownError = 8,
    FailedToParse = 9,
    UserNotFound = 11,
    Unauthorized = 13,
    TypeMismatch = 14,
    Overflow = 15,
    InvalidLength = 16,
    IllegalOperation = 20,
    InvalidPath = 30,
    InvalidBSON = 22,
    NamespaceNotFound = 26,
    RoleNotFound = 31,
    ConflictingOperationInProgress = 117,
    WriteConflict = 112,
    MaxTimeMSExpired = 50,
    CommandNotFound = 59,
    WriteConcernFailed = 64,
    UnknownReplWriteConcern = 79,
    UnsatisfiableWriteConcern = 100,
    TimeProofMismatch = 284,
    InvalidOptions = 72,
    InvalidNamespace = 73,
    NodeNotFound = 74,
    InvalidReplicaSetConfig = 93,
    NotYetInitialized = 94,
    OperationFailed = 96,
    NoReplicationEnabled = 76,
    NotSecondary = 95,
    CommandFailed = 125,
    InconsistentReplicaSetNames = 108,
    ProtocolError = 17,
    AuthenticationFailed = 18,
    NewReplicaSetConfigurationIncompatible = 103,
    ExceededTimeLimit = 262,
    NetworkTimeout = 89,
    ShutdownInProgress = 91,
    NoProgressMade = 82,
    UnsupportedFormat = 12,
    ChecksumMismatch = 288,
    IllegalOpMsgFlag = 223,
    TooManyDocumentSequences = 233,
    MechanismUnavailable = 334,
    PooledConnectionsDropped = 145,
    NetworkInterfaceExceededTimeLimit = 202,
    BSONObjectTooLarge = 10334,
    NotWritablePrimary = 10107,
    DuplicateKey = 11000,
    InterruptedAtShutdown = 11600,
    // The query language (filters, expressions, sort).
    InvalidPipelineOperator = 168,
    ConversionFailure = 241,
    Location15983 = 15983,
    Location15998 = 15998,
    Location16007 = 16007,
    Location16020 = 16020,
    Location16034 = 16034,
    Location16410 = 16410,
    Location16554 = 16554,
    Location16555 = 16555,
    Location16556 = 16556,
    Location16608 = 16608,
    Location16609 = 16609,
    Location16610 = 16610,
    Location16611 = 16611,
    Location16702 = 16702,
    Location16872 = 16872,
    Location17124 = 17124,
    Location17276 = 17276,
    Location28651 = 28651,
    Location28664 = 28664,
    Location28689 = 28689,
    Location28690 = 28690,
    Location28691 = 28691,
    Location28714 = 28714,
    Location28765 = 28765,
    Location28766 = 28766,
    Location34471 = 34471,
    Location34473 = 34473,
    Location40066 = 40066,
    Location40068 = 40068,
    Location40081 = 40081,
    Location40085 = 40085,
    Location40087 = 40087,
    Location40091 = 40091,
    Location40092 = 40092,
    Location40390 = 40390,
    Location40485 = 40485,
    Location51091 = 51091,
    Location51104 = 51104,
    Location51105 = 51105,
    Location51108 = 51108,
    ExceededMemoryLimit = 146,
    Location16006 = 16006,
    Location16612 = 16612,
    Location16883 = 16883,
    Location18533 = 18533,
    Location18535 = 18535,
    Location18536 = 18536,
    Location18537 = 18537,
    Location28656 = 28656,
    Location28657 = 28657,
    Location28680 = 28680,
    Location28724 = 28724,
    Location28729 = 28729,
    Location28758 = 28758,
    Location28759 = 28759,
    Location28761 = 28761,
    Location28764 = 28764,
    Location31022 = 31022,
    Location34435 = 34435,
    Location34443 = 34443,
    Location34445 = 34445,
    Location34449 = 34449,
    Location34455 = 34455,
    Location34456 = 34456,
    Location40080 = 40080,
    Location40086 = 40086,
    Location40090 = 40090,
    Location40097 = 40097,
    Location40386 = 40386,
    Location40394 = 40394,
    Location40395 = 40395,
    Location40398 = 40398,
    Location40400 = 40400,
    Location50699 = 50699,
    Location50700 = 50700,
    Location51075 = 51075,
    Location51083 = 51083,
    Location51106 = 51106,
    Location327391 = 327391,
    Location4161105 = 4161105,
    Location4161106 = 4161106,
    Location5654602 = 5654602,
    Interrupted = 11601,
    InterruptedDueToReplStateChange = 11602,
    PrimarySteppedDown = 189,
    NotPrimaryNoSecondaryOk = 13435,
    NotPrimaryOrSecondary = 13436,
    IDLFailedToParse = 40414,
    IDLUnknownField = 40415,
    AlreadyInitialized = 23,
    KeyNotFound = 211,
    Location31368 = 31368,
    Location51756 = 51756,
    Location40430 = 40430,
    Location40431 = 40431,
    Location40432 = 40432,
    Location40433 = 40433,
    Location40571 = 40571,
    Location40587 = 40587,
    Location51002 = 51002,
    Location51003 = 51003,
    Location34344 = 34344,
    Location34345 = 34345,
    Location34346 = 34346,
    Location34347 = 34347,
    Location51153 = 51153,
    Location51154 = 51154,
    Location5739101 = 5739101,
    Location13111 = 13111,
    Location51252 = 51252,
    NoSuchSession = 206,
    ClientMetadataCannotBeMutated = 186,
    ClientMetadataMissingField = 183,
    ClientMetadataAppNameTooLarge = 184,
    ClientMetadataDocumentTooLarge = 185,
    FailPointSetFailed = 157,
    SocketException = 9001,
    LegacyNotPrimary = 10058,
    APIVersionError = 322,
    APIStrictError = 323,
    APIDeprecationError = 324,
    Location50985 = 50985,
    Location4886600 = 4886600,
    Location40323 = 40323,
    Location40324 = 40324,
    Location40602 = 40602,
    Location15959 = 15959,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_agree_with_mongodb() {
        assert_eq!(Code::CommandNotFound.number(), 59);
        assert_eq!(Code::CommandNotFound.name(), "CommandNotFound");
        assert_eq!(Code::PooledConnectionsDropped.number(), 145);
        assert_eq!(Code::from_number(40414), Some(Code::IDLFailedToParse));
        // The three codes of mongod's ConnectionFatalMessageParseError category.
        assert_eq!(Code::IllegalOpMsgFlag.number(), 223);
        assert_eq!(Code::TooManyDocumentSequences.number(), 233);
        assert_eq!(Code::ChecksumMismatch.number(), 288);
    }
}
