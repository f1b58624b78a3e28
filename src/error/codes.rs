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
    PathNotViable = 28,
    InvalidPath = 30,
    CannotBackfillArray = 34,
    ConflictingUpdateOperators = 40,
    DollarPrefixedFieldName = 52,
    InvalidIdField = 53,
    NotSingleValueField = 54,
    EmptyFieldName = 56,
    ImmutableField = 66,
    InvalidBSON = 22,
    NamespaceNotFound = 26,
    CursorNotFound = 43,
    NamespaceExists = 48,
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
    InvalidPipelineOperator = 168,
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
    Location31002 = 31002,
    Location31249 = 31249,
    Location31250 = 31250,
    Location31252 = 31252,
    Location31253 = 31253,
    Location31254 = 31254,
    Location31255 = 31255,
    Location31256 = 31256,
    Location31257 = 31257,
    Location31258 = 31258,
    Location31259 = 31259,
    Location31270 = 31270,
    Location31271 = 31271,
    Location31272 = 31272,
    Location31273 = 31273,
    Location31274 = 31274,
    Location31275 = 31275,
    Location31276 = 31276,
    Location31277 = 31277,
    Location31287 = 31287,
    Location31308 = 31308,
    Location31310 = 31310,
    Location31395 = 31395,
    Location40228 = 40228,
    Location40229 = 40229,
    Location40272 = 40272,
    Location40352 = 40352,
    Location40353 = 40353,
    Location40430 = 40430,
    Location40431 = 40431,
    Location40432 = 40432,
    Location40433 = 40433,
    Location40571 = 40571,
    Location40587 = 40587,
    Location51002 = 51002,
    Location51246 = 51246,
    Location51247 = 51247,
    Location51270 = 51270,
    Location51003 = 51003,
    Location34344 = 34344,
    Location34345 = 34345,
    Location34346 = 34346,
    Location34347 = 34347,
    Location51024 = 51024,
    Location51153 = 51153,
    Location51154 = 51154,
    Location5739101 = 5739101,
    Location13111 = 13111,
    Location15969 = 15969,
    Location15998 = 15998,
    Location16410 = 16410,
    Location17276 = 17276,
    Location17419 = 17419,
    Location17420 = 17420,
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
