package blob

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go/aws/awserr"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // registers "filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"     // registers "s3aws"
)

// checkTimeout bounds Open's first request: an endpoint that drops packets
// would otherwise hold the server's start for minutes of retries.
const checkTimeout = 15 * time.Second

// Open returns the blob store's driver: distribution's filesystem driver
// rooted at dir when cfg is the zero Config, else its s3-aws driver rooted
// at cfg.Prefix. Pass the server's data directory as dir so keys land where
// they are today (/artifacts/… in DATA/artifacts/…).
//
// With S3, Open lists the root once, so an endpoint that is down, a bucket
// that does not exist or credentials that are refused fail the start with
// an error naming the endpoint and bucket (never a secret).
func Open(ctx context.Context, cfg Config, dir string) (storagedriver.StorageDriver, error) {
	if !cfg.S3() {
		if dir == "" { // the driver would pick /var/lib/registry
			return nil, errors.New("blob store: no directory given for the filesystem driver")
		}
		d, err := factory.Create(ctx, "filesystem", map[string]any{"rootdirectory": dir})
		if err != nil {
			return nil, fmt.Errorf("blob store in %s: %w", dir, err)
		}
		return d, nil
	}
	d, err := factory.Create(ctx, s3Driver, cfg.s3Params(cfg.Prefix))
	if err != nil {
		return nil, fmt.Errorf("blob store %s: %w", cfg.where(), err)
	}
	if err := Check(ctx, cfg, d); err != nil {
		return nil, err
	}
	return d, nil
}

// Check lists the root of d once and explains a failure in terms of cfg:
// for the start, and for a health check while running.
func Check(ctx context.Context, cfg Config, d storagedriver.StorageDriver) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	_, err := d.List(ctx, "/")
	if err == nil {
		return nil
	}
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) { // an empty store (the filesystem driver before its first write)
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("blob store %s: S3 endpoint unreachable: no answer within %s: check the endpoint and that the S3 service is running", cfg.where(), checkTimeout)
	}
	return fmt.Errorf("blob store %s: %w", cfg.where(), Explain(err))
}

// where names the bucket and the server for messages.
func (c Config) where() string {
	ep := c.Endpoint
	if ep == "" {
		ep = "AWS S3 in " + c.Region
	}
	return fmt.Sprintf("s3://%s/%s (endpoint %s)", c.Bucket, c.Prefix, ep)
}

// Explain turns an error of the s3-aws driver into one line that says what
// is wrong and what to do, keeping the original as its Unwrap. Other errors
// (the filesystem driver's, PathNotFoundError) come back as they are.
func Explain(err error) error {
	aerr := awsError(err)
	if aerr == nil {
		return err
	}
	var msg string
	switch aerr.Code() {
	case "NoSuchBucket":
		msg = "the bucket does not exist: create it, or fix the bucket name in --blob-store"
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "InvalidClientTokenId":
		msg = fmt.Sprintf("credentials refused (%s): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN or AWS_PROFILE", aerr.Code())
	case "AccessDenied", "Forbidden":
		msg = fmt.Sprintf("access denied (%s): the credentials need s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket", aerr.Code())
	case "NoCredentialProviders":
		msg = "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials"
	case "RequestError", "RequestCanceled", "SerializationError":
		msg = fmt.Sprintf("S3 endpoint unreachable: %s: check the endpoint and that the S3 service is running", rootCause(aerr))
	default:
		// The SDK's own text spans lines (status code, request and host ids).
		first, _, _ := strings.Cut(aerr.Message(), "\n")
		msg = fmt.Sprintf("S3 error %s: %s", aerr.Code(), first)
	}
	return &explained{msg: msg, err: err}
}

type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// awsError finds the AWS error inside a driver error: base.Base wraps it in
// storagedriver.Error, and the writer in fmt.Errorf, neither of which
// awserr can be reached through with errors.As alone.
func awsError(err error) awserr.Error {
	for err != nil {
		switch e := err.(type) {
		case awserr.Error:
			return e
		case storagedriver.Error:
			err = e.Detail
		case *storagedriver.Error:
			err = e.Detail
		default:
			err = errors.Unwrap(err)
		}
	}
	return nil
}

// rootCause is the innermost error of an AWS request error, shorn of the
// request URL ("dial tcp 127.0.0.1:9000: connect: connection refused").
func rootCause(err error) string {
	for {
		aerr, ok := err.(awserr.Error)
		if !ok || aerr.OrigErr() == nil {
			break
		}
		err = aerr.OrigErr()
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "no answer in time (" + err.Error() + ")"
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}
