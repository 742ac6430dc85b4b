package selfservice_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/projection"
	"strongroom.dev/services/authd/internal/readmodel"
	"strongroom.dev/services/authd/mobileclient"
)

var errShed = errors.New("shed")

// TestLockWinsOverConcurrentSignIns: while sign-ins run in parallel, the
// back office locks the device. However the grants and the lock interleave
// — a grant may decide before the lock commits and start its session after
// the lock listed the sessions to revoke (without the grants' second look
// at the device, some 20 sessions per round outlived the lock) — once the
// lock has answered and the grants have stopped, no session of the device
// is active. Five rounds of biometric sign-ins and one of passcode
// sign-ins, each on a fresh device.
func TestLockWinsOverConcurrentSignIns(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	for round := range 6 {
		user := fmt.Sprintf("race-%d", round)
		app, _ := biometricApp(t, s, user)
		signIn := func(c *mobileclient.Client) error {
			_, err := c.SignInBiometric(ctx, nil)
			return err
		}
		workers, before := 12, int64(20)
		if round == 5 {
			// Parallel attempts count as failures until verified: more
			// than 3 at once would be throttled.
			workers, before = 3, 2
			signIn = func(c *mobileclient.Client) error {
				_, err := c.SignIn(ctx, "123456")
				if mobileclient.Code(err) == "temporarily_unavailable" {
					return errShed // the hashing pool shed load: try again
				}
				return err
			}
		}
		var wg sync.WaitGroup
		var tokens atomic.Int64
		stop := make(chan struct{})
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					err := signIn(app)
					switch code := mobileclient.Code(err); {
					case err == nil:
						tokens.Add(1)
					case errors.Is(err, errShed):
					case code == "device_locked":
						return
					default:
						t.Errorf("sign-in: %v", err)
						return
					}
				}
			}()
		}
		// Lock while sign-ins are flowing.
		for deadline := time.Now().Add(20 * time.Second); tokens.Load() < before && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		lock(t, s, app.DeviceID)
		close(stop)
		wg.Wait()
		if tokens.Load() == 0 {
			t.Fatalf("round %d: no sign-in got through before the lock: the test proves nothing", round)
		}
		docs, err := s.App.ReadModels.ListByOwner(ctx, readmodel.SessionsName, user)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			sess, err := projection.Decode[readmodel.Session](d)
			if err != nil {
				t.Fatal(err)
			}
			if sess.DeviceID == app.DeviceID && sess.Active(time.Now()) {
				t.Errorf("round %d: session %s of the locked device is still active (%d sign-ins)", round, sess.SessionID, tokens.Load())
			}
		}
	}
}
