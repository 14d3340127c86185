package purchase

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// MaxAuthorizations is the most authorizations one request holds.
const MaxAuthorizations = 2500

// Field names a buyer's input that is wrong, by its spec path.
type Field string

// Inputs of a new request that can be wrong.
const (
	FieldCount          Field = "count"
	FieldMaxAmount      Field = "maxAmount"
	FieldMaxSpendPerDay Field = "autoRefill.maxSpendPerDay"
)

// InputError is a buyer's input that cannot be used.
type InputError struct {
	Field Field
	Err   error
}

func (e *InputError) Error() string { return string(e.Field) + ": " + e.Err.Error() }

func (e *InputError) Unwrap() error { return e.Err }

// PriceAboveCapError refuses a seller whose price per call is above the
// buyer's cap; both are formatted in token units with the symbol.
type PriceAboveCapError struct {
	Price, Cap string
}

func (e *PriceAboveCapError) Error() string {
	return fmt.Sprintf("not signing: the seller asks %s per call, above the cap of %s", e.Price, e.Cap)
}

// Order is what a buyer asks for: authorizations for a seller's price,
// within caps written in token units.
type Order struct {
	Name, Namespace string
	Endpoint        string
	Model           string
	Count           int
	MaxAmount       string // refuse a price per call above this
	MaxTotal        int    // authorizations ever signed (0 = no cap)
	MaxSpendPerDay  string // "" = no cap
	AutoRefill      bool
	Threshold       int
	RefillCount     int // 0 = Count
}

// NewRequest is the PurchaseRequest for an order at the seller's terms,
// not yet signed. It refuses a price above MaxAmount (*PriceAboveCapError)
// and a Count past MaxTotal; an input it cannot use is an *InputError.
func NewRequest(o Order, terms *Terms) (*v1alpha1.PurchaseRequest, error) {
	dec := terms.Token.Decimals
	limit, err := evm.ParseAmount(o.MaxAmount, dec)
	if err != nil {
		return nil, &InputError{Field: FieldMaxAmount, Err: err}
	}
	if terms.Price.Cmp(limit) > 0 {
		return nil, &PriceAboveCapError{Price: terms.PriceText(), Cap: o.MaxAmount + " " + terms.Token.Symbol}
	}
	var daily string
	if o.MaxSpendPerDay != "" {
		d, err := evm.ParseAmount(o.MaxSpendPerDay, dec)
		if err != nil {
			return nil, &InputError{Field: FieldMaxSpendPerDay, Err: err}
		}
		daily = d.String()
	}
	if n, why := Allowance(0, o.Count, o.MaxTotal); n < o.Count {
		return nil, &InputError{Field: FieldCount, Err: fmt.Errorf("%d is more than maxTotal allows (%s)", o.Count, why)}
	}
	pr := &v1alpha1.PurchaseRequest{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "PurchaseRequest"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, Annotations: map[string]string{}},
		Spec:       v1alpha1.PurchaseRequestSpec{Endpoint: o.Endpoint, Model: o.Model, Count: o.Count, Payment: terms.Payment()},
	}
	if o.MaxTotal > 0 || daily != "" || o.AutoRefill {
		rc := o.RefillCount
		if rc == 0 {
			rc = o.Count
		}
		pr.Spec.AutoRefill = &v1alpha1.PurchaseAutoRefill{Enabled: o.AutoRefill, Threshold: o.Threshold, Count: rc, MaxTotal: o.MaxTotal, MaxSpendPerDay: daily}
	}
	return pr, nil
}

// PriceText is the price per call in token units with the symbol.
func (t *Terms) PriceText() string {
	return evm.FormatAmount(t.Price, t.Token.Decimals) + " " + t.Token.Symbol
}

// AddSigned puts freshly signed authorizations into a request: after
// kept, with the signed-so-far count raised to total.
func AddSigned(pr *v1alpha1.PurchaseRequest, kept, signed []v1alpha1.PreSignedAuth, total int) {
	pr.Spec.PreSignedAuths = append(kept, signed...)
	if pr.Annotations == nil {
		pr.Annotations = map[string]string{}
	}
	pr.Annotations[TotalSignedAnnotation] = strconv.Itoa(total)
}

// Why a request is not refilled.
var (
	ErrNotRefilling  = errors.New("not refilling")
	ErrAutoRefillOff = errors.New("autoRefill is not enabled on this request")
)

// Refill is how a request is topped up now: sign N more (fewer than asked
// when Why says so), keep the unexpired Kept, and count Total signed in
// all. N is 0 when enough remain (Idle).
type Refill struct {
	N         int
	Why       string
	Kept      []v1alpha1.PreSignedAuth
	Total     int
	MaxTotal  int
	Idle      bool // at or above the threshold: nothing to do
	Remaining int
	Threshold int
}

// PlanRefill decides a refill of pr by signer: count authorizations when
// count > 0, else autoRefill.count when fewer than autoRefill.threshold
// remain. It never passes autoRefill.maxTotal nor MaxAuthorizations, and
// refuses a request whose seller changed its price (PricingMismatch) or
// that another key signed; those errors wrap ErrNotRefilling. A request
// without autoRefill and no count is ErrAutoRefillOff.
func PlanRefill(pr *v1alpha1.PurchaseRequest, signer common.Address, count int, now time.Time) (*Refill, error) {
	if cond := meta.FindStatusCondition(pr.Status.Conditions, ConditionPricingMismatch); cond != nil && cond.Status == metav1.ConditionTrue {
		return nil, fmt.Errorf("%w: %s (re-create the request at the new price)", ErrNotRefilling, cond.Message)
	}
	if s := Signer(pr); s != "" && s != signer.Hex() {
		return nil, fmt.Errorf("%w: the request's authorizations are signed by %s, this key is %s", ErrNotRefilling, s, signer.Hex())
	}
	remaining := len(pr.Spec.PreSignedAuths)
	if pr.Status.ObservedGeneration > 0 {
		remaining = pr.Status.Remaining
	}
	want := count
	ar := pr.Spec.AutoRefill
	if want == 0 {
		if ar == nil || !ar.Enabled {
			return nil, ErrAutoRefillOff
		}
		if remaining >= ar.Threshold {
			return &Refill{Idle: true, Remaining: remaining, Threshold: ar.Threshold}, nil
		}
		want = ar.Count
	}
	r := &Refill{Remaining: remaining}
	if ar != nil {
		r.MaxTotal, r.Threshold = ar.MaxTotal, ar.Threshold
	}
	total := TotalSigned(pr)
	r.N, r.Why = Allowance(total, want, r.MaxTotal)
	if r.N == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotRefilling, r.Why)
	}
	r.Kept = PruneExpired(pr.Spec.PreSignedAuths, now)
	if len(r.Kept)+r.N > MaxAuthorizations {
		r.N = MaxAuthorizations - len(r.Kept)
		r.Why = fmt.Sprintf("a request holds at most %d authorizations", MaxAuthorizations)
	}
	r.Total = total + r.N
	return r, nil
}
