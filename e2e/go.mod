module strongroom.dev/e2e

go 1.26.0

replace (
	strongroom.dev/api => ../api
	strongroom.dev/services => ../services
)

require (
	github.com/go-jose/go-jose/v4 v4.1.9
	github.com/jackc/pgx/v5 v5.12.0
	strongroom.dev/api v0.0.0
	strongroom.dev/services v0.0.0
)

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	golang.org/x/text v0.44.0 // indirect
)
