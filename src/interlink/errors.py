"""One error tree for every layer and surface.

Each class carries the platform's wire ``error_code``, the HTTP status a REST surface answers with,
a gRPC status name for the Pub/Sub surface, and the ``fields`` the error is about. Surfaces render
these; nothing else formats error bodies.

::

    InterlinkError                      UNKNOWN_EXCEPTION          500
    ├── RequestError                    (400 family: the caller sent something wrong)
    │   ├── JsonParserError             JSON_PARSER_ERROR          400
    │   ├── MalformedIdError            MALFORMED_ID               400
    │   ├── MalformedQueryError         MALFORMED_QUERY            400
    │   ├── MalformedSearchError        MALFORMED_SEARCH           400
    │   ├── InvalidFieldError           INVALID_FIELD              400
    │   ├── InvalidTypeError            INVALID_TYPE               400 (404 on sObject paths)
    │   ├── InvalidFieldForInsertUpdate INVALID_FIELD_FOR_INSERT_UPDATE 400
    │   ├── InvalidReplicationDate      INVALID_REPLICATION_DATE   400
    │   ├── InvalidHeaderError          INVALID_HEADER_VALUE       400
    │   ├── QueryTimeout                QUERY_TIMEOUT              400
    │   ├── InvalidQueryLocator         INVALID_QUERY_LOCATOR      400
    │   ├── RequestTooLarge             EXCEEDED_MAX_SIZE_REQUEST  413 (a body over the surface's limit)
    │   ├── RequestTimeout              REQUEST_TIMEOUT            408 (a body that arrives too slowly)
    │   ├── BulkJobError                INVALIDJOB                 400 (409: wrong API version for results)
    │   │   ├── InvalidJobState         INVALIDJOBSTATE            400
    │   │   ├── InvalidEntity           INVALIDENTITY              400
    │   │   ├── ClientInputError        CLIENTINPUTERROR           400
    │   │   └── ExceededQuota           EXCEEDEDQUOTA              403
    │   └── DmlError                    (per-record save errors, carry statusCode in SaveResults)
    │       ├── RequiredFieldMissing    REQUIRED_FIELD_MISSING     400
    │       ├── StringTooLong           STRING_TOO_LONG            400
    │       ├── RestrictedPicklist      INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST 400
    │       ├── DuplicateValue          DUPLICATE_VALUE            400
    │       ├── InvalidCrossReference   INVALID_CROSS_REFERENCE_KEY 400
    │       ├── FieldIntegrityError     FIELD_INTEGRITY_EXCEPTION  400
    │       ├── InvalidTypeOnField      INVALID_TYPE_ON_FIELD_IN_RECORD 400
    │       ├── EntityIsDeleted         ENTITY_IS_DELETED          404
    │       ├── DuplicateExternalId     DUPLICATE_EXTERNAL_ID      300
    │       └── UnableToLockRow         UNABLE_TO_LOCK_ROW         409
    ├── MultipleErrors                  (several errors about one record; status of the first)
    ├── NotFoundError                   NOT_FOUND                  404
    ├── MethodNotAllowed                METHOD_NOT_ALLOWED         405
    ├── NotModified                     NOT_MODIFIED               304
    ├── PreconditionFailed              PRECONDITION_FAILED        412
    ├── AuthError                       (who is calling)
    │   ├── InvalidSession              INVALID_SESSION_ID         401
    │   ├── InsufficientAccess          INSUFFICIENT_ACCESS        403
    │   └── OAuthError                  RFC 6749 ``error`` codes   400 (own body shape)
    ├── RequestLimitExceeded            REQUEST_LIMIT_EXCEEDED     403
    ├── ServiceUnavailable              SERVER_UNAVAILABLE         503 + Retry-After (the database is unreachable)
    ├── StorageLimitExceeded            STORAGE_LIMIT_EXCEEDED     507 (the disk under the store is full)
    └── ConfigurationError              (settings, metadata and deploy problems; CLI exit code 2)
        ├── MetadataError               INVALID_METADATA           400
        └── DestructiveChangeError      DESTRUCTIVE_CHANGE         400
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class InterlinkError(Exception):
    """Root of every error Interlink raises on purpose."""

    error_code: ClassVar[str] = "UNKNOWN_EXCEPTION"
    http_status: ClassVar[int] = 500
    grpc_status: ClassVar[str] = "INTERNAL"
    exit_code: ClassVar[int] = 1
    # Seconds a client should wait before retrying (REST: the ``Retry-After`` header); None: not a transient error.
    retry_after: int | None = None

    def __init__(self, message: str, fields: Sequence[str] = (), *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields: list[str] = list(fields)
        if error_code is not None:
            self.error_code = error_code  # type: ignore[misc]

    def to_wire(self) -> dict[str, Any]:
        """The platform's REST error object: ``{"message", "errorCode", "fields"}``."""
        return {"message": self.message, "errorCode": self.error_code, "fields": list(self.fields)}

    def wire_list(self) -> list[dict[str, Any]]:
        """The REST error body: a JSON array of error objects."""
        return [self.to_wire()]

    def to_save_error(self) -> dict[str, Any]:
        """The per-record error object inside SaveResults (key ``statusCode``, not ``errorCode``)."""
        return {"statusCode": self.error_code, "message": self.message, "fields": list(self.fields)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.error_code}: {self.message!r}, fields={self.fields})"


class RequestError(InterlinkError):
    error_code = "INVALID_REQUEST"
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"


class JsonParserError(RequestError):
    error_code = "JSON_PARSER_ERROR"


class MalformedIdError(RequestError):
    error_code = "MALFORMED_ID"


class MalformedQueryError(RequestError):
    error_code = "MALFORMED_QUERY"


class MalformedSearchError(RequestError):
    """A SOSL search (or parameterizedSearch) the platform would refuse to run."""

    error_code = "MALFORMED_SEARCH"


class InvalidFieldError(RequestError):
    error_code = "INVALID_FIELD"


class InvalidTypeError(RequestError):
    error_code = "INVALID_TYPE"


class InvalidFieldForInsertUpdate(RequestError):
    error_code = "INVALID_FIELD_FOR_INSERT_UPDATE"


class InvalidReplicationDate(RequestError):
    error_code = "INVALID_REPLICATION_DATE"


class InvalidHeaderError(RequestError):
    error_code = "INVALID_HEADER_VALUE"


class InvalidQueryLocator(RequestError):
    error_code = "INVALID_QUERY_LOCATOR"


class QueryTimeout(RequestError):
    """A query ran past its time limit (120 seconds, as on the platform)."""

    error_code = "QUERY_TIMEOUT"


class DmlError(RequestError):
    """A save error about one record; collections and bulk report these per record."""

    error_code = "FIELD_CUSTOM_VALIDATION_EXCEPTION"


class RequiredFieldMissing(DmlError):
    error_code = "REQUIRED_FIELD_MISSING"


class StringTooLong(DmlError):
    error_code = "STRING_TOO_LONG"


class RestrictedPicklist(DmlError):
    error_code = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


class DuplicateValue(DmlError):
    error_code = "DUPLICATE_VALUE"


class InvalidCrossReference(DmlError):
    error_code = "INVALID_CROSS_REFERENCE_KEY"


class FieldIntegrityError(DmlError):
    error_code = "FIELD_INTEGRITY_EXCEPTION"


class InvalidTypeOnField(DmlError):
    error_code = "INVALID_TYPE_ON_FIELD_IN_RECORD"


class EntityIsDeleted(DmlError):
    error_code = "ENTITY_IS_DELETED"
    http_status = 404


class DuplicateExternalId(DmlError):
    error_code = "DUPLICATE_EXTERNAL_ID"
    http_status = 300

    def __init__(self, message: str, fields: Sequence[str] = (), *, matches: Sequence[str] = ()) -> None:
        super().__init__(message, fields)
        self.matches = list(matches)


class UnableToLockRow(DmlError):
    error_code = "UNABLE_TO_LOCK_ROW"
    http_status = 409
    grpc_status = "ABORTED"


class MultipleErrors(InterlinkError):
    """Several errors about one request; the body lists them all with the first one's status."""

    def __init__(self, errors: Sequence[InterlinkError]) -> None:
        super().__init__(errors[0].message, errors[0].fields, error_code=errors[0].error_code)
        self.errors = list(errors)
        self.http_status = errors[0].http_status  # type: ignore[misc]

    def wire_list(self) -> list[dict[str, Any]]:
        return [error.to_wire() for error in self.errors]


class NotFoundError(InterlinkError):
    error_code = "NOT_FOUND"
    http_status = 404
    grpc_status = "NOT_FOUND"

    def __init__(self, message: str = "The requested resource does not exist", fields: Sequence[str] = ()) -> None:
        super().__init__(message, fields)


class MethodNotAllowed(InterlinkError):
    error_code = "METHOD_NOT_ALLOWED"
    http_status = 405
    grpc_status = "UNIMPLEMENTED"

    def __init__(self, method: str, allowed: Sequence[str]) -> None:
        super().__init__(f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}")
        self.allowed = list(allowed)


class NotModified(InterlinkError):
    error_code = "NOT_MODIFIED"
    http_status = 304
    grpc_status = "FAILED_PRECONDITION"


class PreconditionFailed(InterlinkError):
    error_code = "PRECONDITION_FAILED"
    http_status = 412
    grpc_status = "FAILED_PRECONDITION"


class AuthError(InterlinkError):
    error_code = "INVALID_AUTH"
    http_status = 401
    grpc_status = "UNAUTHENTICATED"


class InvalidSession(AuthError):
    error_code = "INVALID_SESSION_ID"

    def __init__(self, message: str = "Session expired or invalid") -> None:
        super().__init__(message)


class InsufficientAccess(AuthError):
    error_code = "INSUFFICIENT_ACCESS"
    http_status = 403
    grpc_status = "PERMISSION_DENIED"


class ApiDisabled(InsufficientAccess):
    """The user lacks the API Enabled permission."""

    error_code = "API_DISABLED_FOR_ORG"

    def __init__(self, message: str = "API is not enabled for this Organization or Partner") -> None:
        super().__init__(message)


class OAuthError(AuthError):
    """An OAuth 2.0 token-endpoint error; rendered as ``{"error", "error_description"}``."""

    http_status = 400

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description, error_code=error)
        self.error = error
        self.description = description
        self.http_status = status  # type: ignore[misc]


class RequestTooLarge(RequestError):
    """A request body over its surface's size limit: refused before it is read, or cut off as it arrives."""

    error_code = "EXCEEDED_MAX_SIZE_REQUEST"
    http_status = 413


class RequestTimeout(RequestError):
    """A request body that did not arrive in time (a slow or stalled client); the connection is then closed."""

    error_code = "REQUEST_TIMEOUT"
    http_status = 408


class RequestLimitExceeded(InterlinkError):
    error_code = "REQUEST_LIMIT_EXCEEDED"
    http_status = 403
    grpc_status = "RESOURCE_EXHAUSTED"


class ServiceUnavailable(InterlinkError):
    """The org cannot reach something it needs to answer (its database): the request was not carried out and
    nothing was partially written. Transient: retry after ``retry_after`` seconds."""

    error_code = "SERVER_UNAVAILABLE"
    http_status = 503
    grpc_status = "UNAVAILABLE"
    retry_after = 5


class StorageLimitExceeded(InterlinkError):
    """The disk under the store is full: the write was rolled back (everything stored before is intact); writes
    work again once space is freed."""

    error_code = "STORAGE_LIMIT_EXCEEDED"
    http_status = 507
    grpc_status = "RESOURCE_EXHAUSTED"


class ExternalObjectError(InterlinkError):
    """An external data source failed, timed out or answered something unusable; the message names the source."""

    error_code = "EXTERNAL_OBJECT_EXCEPTION"
    http_status = 400
    grpc_status = "UNAVAILABLE"


class ExternalObjectUnsupported(RequestError):
    """A query or write on an external object that its data source cannot carry out (nothing is filtered
    locally instead)."""

    error_code = "EXTERNAL_OBJECT_UNSUPPORTED_EXCEPTION"


class ConfigurationError(InterlinkError):
    error_code = "CONFIGURATION_ERROR"
    http_status = 400
    grpc_status = "FAILED_PRECONDITION"
    exit_code = 2


class MetadataError(ConfigurationError):
    error_code = "INVALID_METADATA"


class DestructiveChangeError(ConfigurationError):
    error_code = "DESTRUCTIVE_CHANGE"

    def __init__(self, message: str, changes: Sequence[str]) -> None:
        super().__init__(message)
        self.changes = list(changes)


__all__ = [
    "AuthError",
    "BulkJobError",
    "BusUnavailable",
    "ClientInputError",
    "ConfigurationError",
    "DestructiveChangeError",
    "DmlError",
    "DuplicateExternalId",
    "DuplicateValue",
    "EntityIsDeleted",
    "ExceededQuota",
    "ExternalObjectError",
    "ExternalObjectUnsupported",
    "FieldIntegrityError",
    "InsufficientAccess",
    "InterlinkError",
    "InvalidCrossReference",
    "InvalidEntity",
    "InvalidFieldError",
    "InvalidFieldForInsertUpdate",
    "InvalidHeaderError",
    "InvalidJobState",
    "InvalidQueryLocator",
    "InvalidReplicationDate",
    "InvalidSession",
    "InvalidTypeError",
    "InvalidTypeOnField",
    "JobApiVersionMismatch",
    "JsonParserError",
    "MalformedIdError",
    "MalformedQueryError",
    "MalformedSearchError",
    "MetadataError",
    "MethodNotAllowed",
    "MultipleErrors",
    "NotFoundError",
    "NotModified",
    "OAuthError",
    "OperationEnqueued",
    "PreconditionFailed",
    "PubSubAuthError",
    "PubSubInvalidRequest",
    "PubSubPermissionDenied",
    "QueryTimeout",
    "ReplayIdCorrupted",
    "ReplayIdInvalid",
    "RequestError",
    "RequestLimitExceeded",
    "RequiredFieldMissing",
    "RestrictedPicklist",
    "SchemaNotFound",
    "ServiceUnavailable",
    "StorageLimitExceeded",
    "StringTooLong",
    "SubscriptionNotFound",
    "TopicNotFound",
    "UnableToLockRow",
    "all_or_none_rolled_back",
]


# -- event bus (Pub/Sub API error codes travel in the gRPC trailer "error-code") ----------------------


class ReplayIdCorrupted(InterlinkError):
    error_code = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"


class ReplayIdInvalid(InterlinkError):
    error_code = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"


class TopicNotFound(InterlinkError):
    error_code = "sfdc.platform.eventbus.grpc.topic.not.found"
    http_status = 404
    grpc_status = "NOT_FOUND"


class PubSubAuthError(InterlinkError):
    error_code = "sfdc.platform.eventbus.grpc.service.auth.error"
    http_status = 401
    grpc_status = "UNAUTHENTICATED"


class PubSubInvalidRequest(InterlinkError):
    error_code = "sfdc.platform.eventbus.grpc.service.invalid.argument"
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"


class PubSubPermissionDenied(InterlinkError):
    error_code = "sfdc.platform.eventbus.grpc.service.permission.denied"
    http_status = 403
    grpc_status = "PERMISSION_DENIED"


class SchemaNotFound(InterlinkError):
    error_code = "sfdc.platform.eventbus.grpc.schema.not.found"
    http_status = 404
    grpc_status = "NOT_FOUND"


class SubscriptionNotFound(InterlinkError):
    error_code = "sfdc.platform.eventbus.grpc.subscription.not.found"
    http_status = 404
    grpc_status = "NOT_FOUND"


class BusUnavailable(InterlinkError):
    """The NATS server refused or did not answer a bus operation (``err_code`` is JetStream's, when it sent one)."""

    error_code = "EVENT_BUS_UNAVAILABLE"
    http_status = 503
    grpc_status = "UNAVAILABLE"
    retry_after = 5

    def __init__(self, message: str, *, err_code: int = 0) -> None:
        super().__init__(message)
        self.err_code = err_code


class OperationEnqueued(InterlinkError):
    """Not a failure: the platform reports a published event's uuid this way beside ``success: true``."""

    error_code = "OPERATION_ENQUEUED"


class BulkJobError(RequestError):
    """A Bulk API 2.0 request the job cannot take (wrong state, bad CSV, unsupported object or operation)."""

    error_code = "INVALIDJOB"


class InvalidJobState(BulkJobError):
    """The job is not in a state that allows the request (upload after close, abort after completion)."""

    error_code = "INVALIDJOBSTATE"


class InvalidEntity(BulkJobError):
    """The object does not exist or the Bulk API does not support it (events, read-only objects)."""

    error_code = "INVALIDENTITY"


class ClientInputError(BulkJobError):
    """The uploaded CSV cannot be read: bad structure, encoding, line endings or header."""

    error_code = "CLIENTINPUTERROR"


class ExceededQuota(BulkJobError):
    """The org's rolling 24-hour Bulk API allocation (records, batches or query jobs) is used up."""

    error_code = "EXCEEDEDQUOTA"
    http_status = 403


class JobApiVersionMismatch(BulkJobError):
    """Query results must be fetched with the API version the job was created with (the platform answers 409)."""

    error_code = "INVALIDJOB"
    http_status = 409


def all_or_none_rolled_back() -> DmlError:
    """The error of a record that was fine but rolled back because another in its all-or-none call failed."""
    return DmlError("Record rolled back because not all records were valid and the request was using "
                    "AllOrNone header", error_code="ALL_OR_NONE_OPERATION_ROLLED_BACK")


class RecordAccessDenied(InterlinkError):
    """A record the caller's sharing does not let them change (someone else's private record)."""

    error_code = "INSUFFICIENT_ACCESS_OR_READONLY"
    http_status = 400
    grpc_status = "PERMISSION_DENIED"


def no_record_access() -> InterlinkError:
    return RecordAccessDenied("insufficient access rights on object id")
