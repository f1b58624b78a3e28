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
    CommandNotSupported = 115,
    InvalidPipelineOperator = 168,
    NotImplemented = 238,
    QueryExceededMemoryLimitNoDiskUseAllowed = 292,
    Location13113 = 13113,
    Location15947 = 15947,
    Location15952 = 15952,
    Location15955 = 15955,
    Location15956 = 15956,
    Location15957 = 15957,
    Location15958 = 15958,
    Location15969 = 15969,
    Location15972 = 15972,
    Location15973 = 15973,
    Location15975 = 15975,
    Location15976 = 15976,
    Location15981 = 15981,
    Location15998 = 15998,
    Location16410 = 16410,
    Location16990 = 16990,
    Location28745 = 28745,
    Location28746 = 28746,
    Location28747 = 28747,
    Location28748 = 28748,
    Location28749 = 28749,
    Location28803 = 28803,
    Location28808 = 28808,
    Location28809 = 28809,
    Location28810 = 28810,
    Location28811 = 28811,
    Location28812 = 28812,
    Location28818 = 28818,
    Location28822 = 28822,
    Location31002 = 31002,
    Location31119 = 31119,
    Location31120 = 31120,
    Location31250 = 31250,
    Location31252 = 31252,
    Location31253 = 31253,
    Location31254 = 31254,
    Location40147 = 40147,
    Location40148 = 40148,
    Location40149 = 40149,
    Location40156 = 40156,
    Location40157 = 40157,
    Location40158 = 40158,
    Location40160 = 40160,
    Location40169 = 40169,
    Location40170 = 40170,
    Location40228 = 40228,
    Location40229 = 40229,
    Location40234 = 40234,
    Location40235 = 40235,
    Location40236 = 40236,
    Location40237 = 40237,
    Location40238 = 40238,
    Location40272 = 40272,
    Location40319 = 40319,
    Location40352 = 40352,
    Location40600 = 40600,
    Location40601 = 40601,
    Location51047 = 51047,
    Location51132 = 51132,
    Location51134 = 51134,
    Location51182 = 51182,
    Location51186 = 51186,
    Location51187 = 51187,
    Location51270 = 51270,
    Location51272 = 51272,
    Location5447000 = 5447000,
    Location5858203 = 5858203,
    Location51024 = 51024,
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
