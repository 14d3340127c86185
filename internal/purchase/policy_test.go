package purchase

import (
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

func usdcTerms(t *testing.T, atomic int64) *Terms {
	t.Helper()
	reg := evm.NewRegistry()
	ch, _ := reg.Chain("base-sepolia")
	tok, err := reg.Token(ch.CAIP2, "")
	if err != nil {
		t.Fatal(err)
	}
	return &Terms{Chain: ch, Token: tok, Price: big.NewInt(atomic)}
}

func TestNewRequestKeepsTheCaps(t *testing.T) {
	terms := usdcTerms(t, 1000) // 0.001 USDC
	order := Order{Name: "weather", Namespace: "shop", Endpoint: "https://api.example.com", Count: 3, MaxAmount: "0.01"}

	pr, err := NewRequest(order, terms)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Spec.AutoRefill != nil || pr.Spec.Count != 3 || pr.Spec.Payment.Price != "1000" || pr.Namespace != "shop" {
		t.Fatalf("without caps: %+v", pr.Spec)
	}

	capped := order
	capped.MaxTotal, capped.MaxSpendPerDay, capped.AutoRefill, capped.Threshold = 10, "0.5", true, 2
	pr, err = NewRequest(capped, terms)
	if err != nil {
		t.Fatal(err)
	}
	if ar := pr.Spec.AutoRefill; ar == nil || !ar.Enabled || ar.Count != 3 || ar.MaxTotal != 10 || ar.MaxSpendPerDay != "500000" || ar.Threshold != 2 {
		t.Fatalf("autoRefill: %+v (count defaults to the order's)", ar)
	}

	var capErr *PriceAboveCapError
	cheap := order
	cheap.MaxAmount = "0.0009"
	if _, err := NewRequest(cheap, terms); !errors.As(err, &capErr) || capErr.Price != "0.001 USDC" || capErr.Cap != "0.0009 USDC" {
		t.Fatalf("a price above the cap: %v", err)
	}
	for field, mutate := range map[Field]func(*Order){
		FieldMaxAmount:      func(o *Order) { o.MaxAmount = "1e3" },
		FieldMaxSpendPerDay: func(o *Order) { o.MaxSpendPerDay = "0.0000001" },
		FieldCount:          func(o *Order) { o.MaxTotal = 2 },
	} {
		o := order
		mutate(&o)
		var ie *InputError
		if _, err := NewRequest(o, terms); !errors.As(err, &ie) || ie.Field != field {
			t.Errorf("%s: err = %v, want an InputError for it", field, err)
		}
	}
}

func TestPlanRefill(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	signer := common.HexToAddress("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
	auth := func(from common.Address, validBefore time.Time) v1alpha1.PreSignedAuth {
		return v1alpha1.PreSignedAuth{From: from.Hex(), ValidBefore: strconv.FormatInt(validBefore.Unix(), 10)}
	}
	request := func(live, expired int, ar *v1alpha1.PurchaseAutoRefill) *v1alpha1.PurchaseRequest {
		pr := &v1alpha1.PurchaseRequest{Spec: v1alpha1.PurchaseRequestSpec{AutoRefill: ar}}
		for i := 0; i < live; i++ {
			pr.Spec.PreSignedAuths = append(pr.Spec.PreSignedAuths, auth(signer, now.Add(time.Hour)))
		}
		for i := 0; i < expired; i++ {
			pr.Spec.PreSignedAuths = append(pr.Spec.PreSignedAuths, auth(signer, now.Add(-time.Hour)))
		}
		return pr
	}
	auto := func(threshold, count, maxTotal int) *v1alpha1.PurchaseAutoRefill {
		return &v1alpha1.PurchaseAutoRefill{Enabled: true, Threshold: threshold, Count: count, MaxTotal: maxTotal}
	}

	// Below the threshold: sign autoRefill.count, drop the expired.
	r, err := PlanRefill(request(1, 2, auto(5, 4, 0)), signer, 0, now)
	if err != nil || r.Idle || r.N != 4 || len(r.Kept) != 1 || r.Total != 7 || r.Why != "" {
		t.Fatalf("below threshold: %+v %v", r, err)
	}
	// At the threshold: nothing to do.
	if r, err := PlanRefill(request(5, 0, auto(5, 4, 0)), signer, 0, now); err != nil || !r.Idle || r.Remaining != 5 {
		t.Fatalf("at threshold: %+v %v", r, err)
	}
	// maxTotal trims the refill, then stops it.
	if r, err := PlanRefill(request(1, 0, auto(5, 4, 3)), signer, 0, now); err != nil || r.N != 2 || r.Total != 3 || !strings.Contains(r.Why, "maxTotal") {
		t.Fatalf("trimmed by maxTotal: %+v %v", r, err)
	}
	if _, err := PlanRefill(request(3, 0, auto(5, 4, 3)), signer, 0, now); !errors.Is(err, ErrNotRefilling) || !strings.Contains(err.Error(), "maxTotal") {
		t.Fatalf("at maxTotal: %v", err)
	}
	// A count signs that many whatever remains, up to the size of a request.
	if r, err := PlanRefill(request(MaxAuthorizations-10, 0, nil), signer, 50, now); err != nil || r.N != 10 || !strings.Contains(r.Why, "at most") {
		t.Fatalf("size cap: %+v %v", r, err)
	}
	if _, err := PlanRefill(request(1, 0, nil), signer, 0, now); !errors.Is(err, ErrAutoRefillOff) {
		t.Fatalf("no autoRefill, no count: %v", err)
	}
	other := common.HexToAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C")
	if _, err := PlanRefill(request(1, 0, auto(5, 4, 0)), other, 0, now); !errors.Is(err, ErrNotRefilling) || !strings.Contains(err.Error(), "signed by") {
		t.Fatalf("another key: %v", err)
	}
	mismatch := request(1, 0, auto(5, 4, 0))
	mismatch.Status.Conditions = []metav1.Condition{{Type: ConditionPricingMismatch, Status: metav1.ConditionTrue, Message: "the seller now asks 0.005 USDC"}}
	if _, err := PlanRefill(mismatch, signer, 10, now); !errors.Is(err, ErrNotRefilling) || !strings.Contains(err.Error(), "0.005") {
		t.Fatalf("price changed: %v", err)
	}
}
