package app

import (
	"context"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/domain/device"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/projection"
	"strongroom.dev/services/authd/internal/readmodel"
)

// sessionRevocations returns the appends that revoke every active session
// of a device. Sessions are found through the inline sessions read model
// (written in the same transaction as session.started, so none is missed)
// and each append carries the session's version: a session that changes
// meanwhile makes the whole append conflict and the caller retry.
func (s *Service) sessionRevocations(ctx context.Context, userID, deviceID, reason, operator string) ([]eventstore.Append, error) {
	docs, err := s.Models.ListByOwner(ctx, readmodel.SessionsName, userID)
	if err != nil {
		return nil, err
	}
	var out []eventstore.Append
	for _, d := range docs {
		sess, err := projection.Decode[readmodel.Session](d)
		if err != nil {
			return nil, err
		}
		if sess.DeviceID != deviceID || sess.RevokedAt != nil {
			continue
		}
		out = append(out, eventstore.Append{StreamID: sess.SessionID, StreamType: events.StreamSession, ExpectedVersion: sess.Version,
			Events: []eventstore.Pending{{Type: events.SessionRevoked, Payload: events.SessionRevokedV1{Reason: reason, Operator: operator}}}})
	}
	return out, nil
}

// revokeLeftovers is the second pass of a lock or revocation, run after
// it committed: it revokes the device's sessions that are still active.
// A grant decides before it appends its session, so one that decided just
// before the lock committed may start its session after the lock listed
// the sessions to revoke. Every grant checks the device again after its
// session committed (DeviceSignedIn); between that check and this pass,
// whose read starts after the lock committed, no session escapes: a grant
// whose check came before the lock's commit committed its session before
// this read, and one whose check came after sees the lock.
func (s *Service) revokeLeftovers(ctx context.Context, userID, deviceID, reason, operator string) error {
	return retry(func() error {
		revs, err := s.sessionRevocations(ctx, userID, deviceID, reason, operator)
		if err != nil || len(revs) == 0 {
			return err
		}
		_, err = s.Events.Append(ctx, revs...)
		return err
	})
}

// DeviceSignedIn is a grant's check after its session committed: if the
// device was locked or revoked meanwhile, the grant revokes the session it
// just started and answers device_locked (or device_unknown) instead of a
// token. See revokeLeftovers for why this closes the race with a lock.
func (s *Service) DeviceSignedIn(ctx context.Context, deviceID string) error {
	d, err := s.readDevice(ctx, deviceID)
	switch {
	case err != nil:
		return err
	case d == nil || d.Status == device.Revoked:
		return errDeviceUnknown()
	case d.Status == device.Locked:
		return errDeviceLocked()
	}
	return nil
}

// LockDevice is the back office's lock: device.locked and the revocation
// of every session of the device, in one append. A reset never lifts it
// (CONTRACT.md, Enrollment step 3).
func (s *Service) LockDevice(ctx context.Context, deviceID, operator, reason string) error {
	var userID string
	locked := false
	err := retry(func() error {
		d, err := s.readDevice(ctx, deviceID)
		if err != nil {
			return err
		}
		if d == nil || d.Status == device.Revoked {
			return errDeviceUnknown()
		}
		userID = d.UserID
		if d.Status == device.Locked && d.LockReason == device.LockBackOffice {
			return nil
		}
		appends := []eventstore.Append{{StreamID: deviceID, StreamType: events.StreamDevice, ExpectedVersion: d.Version,
			Events: []eventstore.Pending{{Type: events.DeviceLocked, Payload: events.DeviceLockedV1{Reason: device.LockBackOffice, Operator: operator}}}}}
		revs, err := s.sessionRevocations(ctx, d.UserID, deviceID, "device_locked", operator)
		if err != nil {
			return err
		}
		_, err = s.Events.Append(ctx, append(appends, revs...)...)
		locked = err == nil
		return err
	})
	if err != nil {
		return err
	}
	if locked {
		s.Metrics.Lockout(ctx, device.LockBackOffice)
	}
	return s.revokeLeftovers(ctx, userID, deviceID, "device_locked", operator)
}

// RevokeDevice ends a device: device.revoked, its user's device slot
// freed, its sessions revoked and its passcode verifier deleted, at once.
func (s *Service) RevokeDevice(ctx context.Context, deviceID, reason, operator string) error {
	var userID string
	err := retry(func() error {
		d, err := s.readDevice(ctx, deviceID)
		if err != nil {
			return err
		}
		if d == nil {
			return errDeviceUnknown()
		}
		userID = d.UserID
		if d.Status == device.Revoked {
			return nil
		}
		appends, err := s.revocationAppends(ctx, d, reason, operator)
		if err != nil {
			return err
		}
		_, err = s.Secrets.AppendWithSecret(ctx, deviceID, nil, appends...)
		return err
	})
	if err != nil {
		return err
	}
	return s.revokeLeftovers(ctx, userID, deviceID, "device_revoked", operator)
}

func (s *Service) revocationAppends(ctx context.Context, d *device.State, reason, operator string) ([]eventstore.Append, error) {
	userEvs, err := s.Events.ReadStream(ctx, userStream(d.UserID), 0)
	if err != nil {
		return nil, err
	}
	var userVersion int64
	if len(userEvs) > 0 {
		userVersion = userEvs[len(userEvs)-1].Version
	}
	appends := []eventstore.Append{
		{StreamID: d.ID, StreamType: events.StreamDevice, ExpectedVersion: d.Version,
			Events: []eventstore.Pending{{Type: events.DeviceRevoked, Payload: events.DeviceRevokedV1{Reason: reason, Operator: operator}}}},
		{StreamID: userStream(d.UserID), StreamType: events.StreamUser, UserID: d.UserID, ExpectedVersion: userVersion,
			Events: []eventstore.Pending{{Type: events.UserDeviceRemoved, Payload: events.UserDeviceRemovedV1{DeviceID: d.ID, Reason: reason}}}},
	}
	revs, err := s.sessionRevocations(ctx, d.UserID, d.ID, "device_revoked", operator)
	if err != nil {
		return nil, err
	}
	return append(appends, revs...), nil
}

// RevokeUnfinished revokes devices that enrolled but set no passcode in
// time (CONTRACT.md: 10 minutes). Candidates come from the devices read
// model; each is re-checked on its own stream before it is revoked.
func (s *Service) RevokeUnfinished(ctx context.Context) (int, error) {
	docs, err := s.Models.All(ctx, readmodel.DevicesName)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, doc := range docs {
		dv, err := projection.Decode[readmodel.Device](doc)
		if err != nil || dv.Status != readmodel.DevicePendingPasscode || s.Now().Sub(dv.EnrolledAt) <= s.Policy.PasscodeDeadline {
			continue
		}
		d, err := s.readDevice(ctx, dv.DeviceID)
		if err != nil {
			return n, err
		}
		if d == nil || !d.PasscodeOverdue(s.Now(), s.Policy) {
			continue
		}
		if err := s.RevokeDevice(ctx, d.ID, "no_passcode", ""); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// RemoveDevice is the user's own removal of one of their devices; a
// device of another user is unknown to them.
func (s *Service) RemoveDevice(ctx context.Context, userID, deviceID string) error {
	d, err := s.readDevice(ctx, deviceID)
	if err != nil {
		return err
	}
	if d == nil || d.UserID != userID || d.Status == device.Revoked {
		return errDeviceUnknown()
	}
	return s.RevokeDevice(ctx, deviceID, "removed_by_user", "")
}
