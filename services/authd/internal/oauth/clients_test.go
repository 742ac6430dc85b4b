package oauth

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadClients(t *testing.T) {
	good := `clients:
  - client_id: back-office
    token_endpoint_auth_method: client_secret_basic
    client_secret_sha256: ` + HashSecret("s3cret-s3cret-s3cret") + `
    grant_types: [client_credentials]
    scopes: ["strongroom:admin"]
    resources: ["https://auth.bank.example/admin"]
  - client_id: mobile-app
    token_endpoint_auth_method: none
    grant_types: [refresh_token]
    resources: ["https://api.bank.example"]
`
	write := func(t *testing.T, body string) string {
		p := filepath.Join(t.TempDir(), "clients.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cs, err := LoadClients(write(t, good))
	if err != nil {
		t.Fatal(err)
	}
	bo, ok := cs.Get("back-office")
	if !ok || bo.IsPublic() || (SecretHasher{}).Compare(context.Background(), bo.GetHashedSecret(), []byte("s3cret-s3cret-s3cret")) != nil {
		t.Fatal("back-office client or its secret is wrong")
	}
	if (SecretHasher{}).Compare(context.Background(), bo.GetHashedSecret(), []byte("s3cret-s3cret-s3creT")) == nil {
		t.Fatal("a wrong secret matched")
	}
	if app, _ := cs.Get("mobile-app"); !app.IsPublic() {
		t.Fatal("mobile-app must be public")
	}
	bad := map[string]string{
		"unknown field":             strings.Replace(good, "scopes:", "scopez:", 1),
		"plain secret":              strings.Replace(good, "client_secret_sha256: ", "client_secret: ", 1),
		"short hash":                strings.Replace(good, HashSecret("s3cret-s3cret-s3cret"), "abc", 1),
		"unknown grant":             strings.Replace(good, "[refresh_token]", "[password]", 1),
		"no resources":              strings.Replace(good, `resources: ["https://api.bank.example"]`, "resources: []", 1),
		"relative resource":         strings.Replace(good, "https://api.bank.example", "/api", 1),
		"public client_credentials": strings.Replace(good, "[refresh_token]", "[client_credentials]", 1),
		"unknown auth method":       strings.Replace(good, "method: none", "method: client_secret_post", 1),
		"duplicate":                 good + strings.SplitN(good, "\n", 2)[1][:strings.Index(strings.SplitN(good, "\n", 2)[1], "  - client_id: mobile-app")],
		"private_key_jwt no jwks":   strings.Replace(good, "client_secret_basic", "private_key_jwt", 1),
		"not yaml":                  "{{{",
	}
	for name, body := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := LoadClients(write(t, body))
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error quotes a secret: %v", err)
			}
		})
	}
}
